"""--grid parsing, the points it gives (grid, random search, max runs) and their run names."""

import pytest

from tunesmith.errors import ConfigError
from tunesmith.sweep.grid import grid_points, parse_grid, point_name, point_tags


def test_parse_grid_keeps_order_and_values_as_written():
    grid = parse_grid("learning_rate=1e-4,2e-4 lora_rank=8,64")
    assert grid.axes == (("learning_rate", ("1e-4", "2e-4")), ("lora_rank", ("8", "64")))
    assert grid.size == 4


def test_repeated_grid_options_and_pipe_separated_values():
    grid = parse_grid(["lora_target=q_proj,v_proj|all", "--lora-dropout=0.0,0.1"])
    assert dict(grid.axes) == {"lora_target": ("q_proj,v_proj", "all"),
                               "lora_dropout": ("0.0", "0.1")}


@pytest.mark.parametrize("spec, needle", [
    ("lora_rank=", "empty value list"),
    ("lora_rank=8,,16", "empty value"),
    ("lora_rank", "is not key=v1,v2"),
    ("=1,2", "is not key=v1,v2"),
    ("lora_rank=8 lora_rank=16", "given twice"),
    ("lora_rank=8,8", "lists a value twice"),
    ("output_dir=a,b", "cannot be swept"),
    ("", "nothing to sweep"),
])
def test_bad_grids_are_one_line_errors(spec, needle):
    with pytest.raises(ConfigError) as err:
        parse_grid(spec)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_points_are_the_cartesian_product_in_order():
    points = grid_points(parse_grid("a=1,2 b=x,y,z"))
    assert points[0] == {"a": "1", "b": "x"} and points[-1] == {"a": "2", "b": "z"}
    assert len({tuple(p.items()) for p in points}) == 6


def test_random_search_is_seeded_distinct_and_capped():
    grid = parse_grid("a=1,2,3,4 b=x,y,z")
    first = grid_points(grid, samples=5, seed=3)
    assert first == grid_points(grid, samples=5, seed=3)
    assert first != grid_points(grid, samples=5, seed=4)
    assert len({tuple(p.items()) for p in first}) == 5
    assert len(grid_points(grid, samples=100)) == 12
    assert grid_points(grid, max_runs=2) == grid_points(grid)[:2]
    with pytest.raises(ConfigError):
        grid_points(grid, samples=0)


def test_point_names_are_safe_directory_names():
    assert point_name({"learning_rate": "1e-4", "lora_rank": "8"}) == "learning_rate=1e-4,lora_rank=8"
    odd = point_name({"lora_target": "q_proj,v_proj", "x": "../$(rm)"})
    assert odd == "lora_target=q_proj_v_proj,x=..___rm_"  # a name, never a path or a command
    long = point_name({f"key{i}": "v" * 20 for i in range(8)})
    assert len(long) <= 96
    assert long != point_name({f"key{i}": "v" * 20 + "w" for i in range(8)})
    assert point_tags({"lr": "1e-4"}) == ["lr=1e-4"]
