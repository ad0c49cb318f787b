"""chat / predict / eval / export with a missing model, checkpoint or adapter: one line, exit 2."""

import pytest

from tunesmith.cli import main


@pytest.mark.parametrize("verb", ["chat", "predict", "eval", "export"])
@pytest.mark.parametrize("what,needle", [
    ("model", "model_name_or_path '{missing}': not found"),
    ("adapter", "adapter_name_or_path '{missing}': not found"),
    ("checkpoint", "adapter_name_or_path '{missing}': not found"),
])
def test_missing_paths_are_one_clear_line(verb, what, needle, tiny_model_dir, chat_data, tmp_path,
                                          capsys):
    missing = tmp_path / ("run/checkpoint-500" if what == "checkpoint" else "nope")
    model = missing if what == "model" else tiny_model_dir
    args = [verb, f"model_name_or_path={model}", f"dataset={chat_data}",
            f"output_dir={tmp_path / 'out'}", f"export_dir={tmp_path / 'exp'}"]
    if what != "model":
        args.append(f"adapter_name_or_path={missing}")
    if verb == "chat":
        args += ["--prompt", "Hi"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle.format(missing=missing) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "exp").exists()
