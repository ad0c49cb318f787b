"""Every command documented in an example's header works as written, so a header that lies fails.

Each ``#   tunesmith ...`` line (with its ``\\`` continuation lines) is parsed the way a shell
would. Every one must name a real verb and options, and its config (the YAML plus the line's
overrides) must validate; adapters and saved models it names must be where the example's own
train line writes them. Every line that names a hub model ID (and every line of an example whose
YAML ships one, e.g. BitFit's Qwen2.5-0.5B-Instruct) then runs as written, with smoke-sized
step counts appended, against the stand-in hub serving a tiny model under that ID. The default
lines, on the bundled model, are trained by test_examples.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tunesmith.cli import COMMANDS, build_parser, main
from tunesmith.config_parse import split_config_and_overrides
from tunesmith.commands import load_run_config
from tunesmith.hub import is_hub_id

from ..conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml")) + \
    sorted((REPO / "examples" / "peft_catalogue").glob("*.yaml"))
SMOKE = {"train": ["max_steps=1", "max_samples=4", "cutoff_len=128", "save_strategy=no",
                   "per_device_train_batch_size=2", "gradient_accumulation_steps=1",
                   "logging_steps=1", "report_to=none", "plot_loss=false"],
         "chat": ["max_new_tokens=4"], "predict": ["max_new_tokens=4", "max_samples=2"],
         "data": []}
TINY_KIND = {"Qwen/": "qwen2", "deepseek-ai/DeepSeek-R1-Distill-Qwen": "qwen2"}  # else llama


def header_commands(path: Path) -> list[list[str]]:
    """The ``tunesmith`` command lines of a YAML's leading comment block, as argv lists."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.startswith("#"):
            break
        lines.append(raw[1:])
    commands, pending = [], None
    for text in lines:
        body = text.strip()
        if pending is None and not body.startswith("tunesmith "):
            continue
        code = re.sub(r"\s+#.*$", "", body)  # a trailing comment (none of ours quotes a '#')
        pending = (pending or "") + " " + code.rstrip("\\").strip()
        if not code.endswith("\\"):
            commands.append(shlex.split(pending))
            pending = None
    return commands


ALL = [(p, argv) for p in EXAMPLES for argv in header_commands(p)]
IDS = [f"{p.relative_to(REPO / 'examples')}:{i}" for i, (p, _) in enumerate(ALL)]


def _args(argv: list[str]):
    args, extras = build_parser().parse_known_args(argv[1:])
    args.config, args.overrides = split_config_and_overrides(extras)
    return args


def _model_id(path: Path, argv: list[str]) -> str | None:
    """The hub model ID a command line trains or runs with (its own override, else the YAML's)."""
    args = _args(argv)
    cfg = load_run_config(args)
    name = cfg.model.model_name_or_path
    return name if _is_model_id(name) else None


def test_every_example_documents_commands():
    assert len(ALL) >= 60
    for path in EXAMPLES:
        assert any(argv[1] == "train" for p, argv in ALL if p == path), path


@pytest.mark.parametrize("path, argv", ALL, ids=IDS)
def test_header_command_parses_and_its_config_validates(path, argv, monkeypatch):
    from tunesmith.model.bundled import BUNDLED

    monkeypatch.chdir(REPO)
    assert argv[0] == "tunesmith" and argv[1] in COMMANDS, argv
    args = _args(argv)
    if argv[1] == "sweep":
        from tunesmith.sweep.grid import grid_points, parse_grid

        for point in grid_points(parse_grid(args.grid))[:4]:
            load_run_config(_args(["tunesmith", "train", args.config, *args.overrides,
                                   *[f"{k}={v}" for k, v in point.items()]]))
        return
    cfg = load_run_config(args)
    if args.config:
        trained = load_run_config(_args(["tunesmith", "train", args.config])).train.output_dir
        for name in (cfg.model.adapter_name_or_path, cfg.model.model_name_or_path):
            if name and name.startswith("saves/") and argv[1] != "train":
                assert name == trained, f"{argv}: {name} is not where the example trains ({trained})"
    model = cfg.model.model_name_or_path
    assert model in BUNDLED or is_hub_id(model) or model.startswith("saves/") or \
        Path(model).exists(), model
    for key in ("deepspeed",):
        value = getattr(cfg.train, key)
        assert value is None or (REPO / value).is_file(), value


def _runs() -> list[tuple[Path, list[str]]]:
    """Lines that use a hub model: their own, or every line of an example whose YAML ships one."""
    runs = []
    for path, argv in ALL:
        if argv[1] not in SMOKE:
            continue
        ships_id = _is_model_id(_yaml_model(path))
        names_id = any(a.startswith("model_name_or_path=") and _is_model_id(a.split("=", 1)[1])
                       for a in argv)
        if names_id or ships_id:
            runs.append((path, argv))
    return runs


def _is_model_id(name: str) -> bool:
    """A hub ID, not one of the examples' run folders (saves/..., written by an earlier line)."""
    return is_hub_id(name) and not name.startswith("saves/")


def _yaml_model(path: Path) -> str:
    import yaml

    return str(yaml.safe_load(path.read_text(encoding="utf-8")).get("model_name_or_path", ""))


def _tiny(kind: str, tokenizer_dir: Path, out: Path) -> Path:
    """A 2-layer model of the ID's family (Qwen2 has q/k/v biases, which BitFit trains); hidden
    64, as bitsandbytes' 4-bit CPU kernel needs a full 64-value block per row (QLoRA lines)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    shape = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                 pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = (Qwen2ForCausalLM(Qwen2Config(**shape)) if kind == "qwen2"
             else LlamaForCausalLM(LlamaConfig(**shape)))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


RUNS = _runs()


@pytest.fixture(scope="module")
def tiny_families(tmp_path_factory, bundled_dir) -> dict[str, dict[str, bytes]]:
    files = {}
    for kind in ("llama", "qwen2"):
        folder = _tiny(kind, bundled_dir, tmp_path_factory.mktemp(f"tiny-{kind}"))
        files[kind] = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return files


@pytest.mark.slow
def test_header_lines_that_use_a_hub_model_run_as_written(hub_env, tiny_families, tmp_path,
                                                           monkeypatch, capsys):
    """In header order (a chat line uses what the train line before it saved), from a working
    directory with the repo's examples/, so the lines' relative paths (saves/...) stay there."""
    assert {str(p.relative_to(REPO / "examples")) for p, _ in RUNS} >= {
        "peft_catalogue/bitfit.yaml", "emotional_support.yaml", "pretrain_text.yaml"}
    for path, argv in RUNS:
        model = _model_id(path, argv) or ""
        kind = next((k for prefix, k in TINY_KIND.items() if model.startswith(prefix)), "llama")
        if model and ("model", model) not in hub_env.repos:
            hub_env.add(model, tiny_families[kind])
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    for path, argv in RUNS:
        code = main(argv[1:] + SMOKE[argv[1]])
        err = capsys.readouterr().err
        assert code == 0, f"{shlex.join(argv)} -> exit {code}: {err[-1500:]}"
    assert any("/resolve/" in r[1] for r in hub_env.requests)
