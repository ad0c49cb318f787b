"""Every import in ``src/tunesmith`` points down the layers (docs/architecture.md):

    commands   cli, commands/, demo
    features   bench/, sweep/, webui/, serve/, export/, evaluate/
    train      train/, infer/, estimate/ (the memory model: train consults it for
               ``gradient_checkpointing: auto``; ``tunesmith estimate`` prints it)
    data       data/
    config     config, config_validate, config_help, compat/
    methods    methods/
    model      model/
    utilities  registry, errors, hardware, paths, config_parse, hub, hub_cache, notes, digest, faults
               (and the package itself)

A module may import from its own layer or any layer below it, never above. Imports are read
from the source with ``ast`` (module level and inside functions alike); imports under
``if TYPE_CHECKING:`` are skipped: they never run and only name types for the editor (a method
takes a ``RunConfig`` although config sits above methods). A new top-level module or package
must be given a layer here. ALLOWED lists the few upward imports that are the design, each
with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

LAYERS = (
    ("utilities", ("tunesmith.__init__", "tunesmith.registry", "tunesmith.errors",
                   "tunesmith.hardware", "tunesmith.paths", "tunesmith.config_parse", "tunesmith.hub",
                   "tunesmith.hub_cache",
                   "tunesmith.notes", "tunesmith.digest", "tunesmith.faults")),
    ("model", ("tunesmith.model",)),
    ("methods", ("tunesmith.methods",)),
    ("config", ("tunesmith.config", "tunesmith.config_validate", "tunesmith.config_help",
                "tunesmith.compat")),
    ("data", ("tunesmith.data",)),
    ("train", ("tunesmith.train", "tunesmith.infer", "tunesmith.estimate")),
    ("features", tuple(f"tunesmith.{p}" for p in ("bench", "sweep", "webui", "serve", "export",
                                                   "evaluate"))),
    # bench/child_ours.py is the entry point of a bench child process: it runs the real
    # `tunesmith train` command (start-up included) under the bench's timer, so it is a command.
    ("commands", ("tunesmith.cli", "tunesmith.commands", "tunesmith.demo", "tunesmith.__main__",
                  "tunesmith.bench.child_ours")),
)


# (importing module, imported module): upward imports that are the design.
ALLOWED = {
    # Strict parsing must know every stage's own keys; each stage declares them in its own file
    # (train/stages/, as a method does in methods/), and config reads only those declarations
    # (stage_param_keys: dataclass fields), never a stage's trainer or data code.
    ("tunesmith.config", "tunesmith.train.stages"),
}


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest prefix that owns ``module`` (None: unassigned)."""
    module = "tunesmith.__init__" if module == "tunesmith" else module  # the package's own file
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            owns = module == prefix or module.startswith(prefix + ".")
            if owns and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of every node under an ``if TYPE_CHECKING:`` block."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every tunesmith import the file executes.

    Args:
        path: the source file.
        module: its dotted module name (relative imports resolve against it).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped, found = _type_checking_nodes(tree), []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            # `from .. import methods` imports the submodule tunesmith.methods
            found += [(node.lineno, f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base)
                      for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "tunesmith"]


def _is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in sorted(SRC.rglob("*.py")) if layer_of(module_name(p)) is None]
    assert not missing, f"give these modules a layer in {Path(__file__).name} LAYERS: {missing}"


def test_imports_point_down_the_layers():
    upward = []
    for path in sorted((SRC / "tunesmith").rglob("*.py")):
        here = layer_of(module_name(path))
        for line, target in imports_of(path, module_name(path)):
            there = layer_of(target)
            allowed = (module_name(path), target) in ALLOWED
            if here is not None and there is not None and there > here and not allowed:
                upward.append(f"{path.relative_to(SRC)}:{line}: {LAYERS[here][0]} imports "
                              f"{target} ({LAYERS[there][0]}, a higher layer)")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The checker itself: imports inside functions and relative ones are found and resolved;
    type-only ones are skipped."""
    fake = tmp_path / "fake.py"
    fake.write_text("from typing import TYPE_CHECKING\nfrom .. import methods\n"
                    "if TYPE_CHECKING:\n    from ..config import RunConfig\n"
                    "def f():\n    from ..train.run import run_training\n", encoding="utf-8")
    found = imports_of(fake, "tunesmith.model.fake")
    assert found == [(2, "tunesmith.methods"), (6, "tunesmith.train.run")]
    assert layer_of("tunesmith.train.run") > layer_of("tunesmith.model.fake")
    assert layer_of("tunesmith.bench.child_ours") > layer_of("tunesmith.bench")
