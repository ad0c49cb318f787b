"""``tunesmith export``: merge an adapter into its base, verify it, save it (``export_format``:
safetensors shards, or GGUF files with an Ollama Modelfile).

Takes LLaMA-Factory's flags as they are: ``--model_name_or_path --adapter_name_or_path
--template --finetuning_type --export_dir --export_size --export_device --export_legacy_format``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


def add_arguments(parser) -> None:
    parser.add_argument("--ollama", metavar="NAME",
                        help="with export_format: gguf, print the `ollama create NAME -f "
                             "<export_dir>/Modelfile` line that installs the export in Ollama")


def check_ollama_name(name: str | None, cfg: RunConfig) -> None:
    """Refuse ``--ollama`` without GGUF, or a name Ollama would reject, before any work."""
    from ..errors import ConfigError
    from ..export.ollama import OLLAMA_NAME

    if name is None:
        return
    if cfg.infer.export_format != "gguf":
        raise ConfigError(f"--ollama needs export_format: gguf (got '{cfg.infer.export_format}')")
    if not OLLAMA_NAME.match(name):
        raise ConfigError(f"--ollama '{name}': an Ollama model name is lowercase letters, digits, "
                          "'.', '_' or '-', optionally namespace/ and :tag (e.g. nova:q4)")


def run(args) -> int:
    from ..export.merge import run_export
    from . import load_run_config

    cfg = load_run_config(args)
    check_ollama_name(getattr(args, "ollama", None), cfg)
    result = run_export(cfg)
    merge, saved = result["merge"], result["saved"]
    print(f"exported {result['dtype']} {cfg.infer.export_format} to {result['export_dir']} "
          f"({len(result['files'])} files)")
    drift = result[f"saved_{result['dtype']}_vs_adapter"]
    if "gguf_files" in result:
        _print_gguf(result)
    else:
        print(f"check passed: merged vs adapter logits max |diff| {merge['max_abs_diff']:.3g} "
              f"(tolerance {merge['tolerance']:.3g}, top-1 agreement "
              f"{merge['top1_agreement']:.3f}); {saved['tensors']} saved tensors equal the merged "
              f"ones bit for bit; saved {result['dtype']} model vs adapter max |diff| "
              f"{drift['max_abs_diff']:.3g} -> {result['export_dir']}/export_check.json")
    if getattr(args, "ollama", None):
        from ..export.ollama import create_command

        print(create_command(args.ollama, result["export_dir"]))
    return 0


def _print_gguf(result: dict) -> None:
    from pathlib import Path

    from ..export.card import human_size

    merge, by = result["merge"], result["gguf_logits_by"]
    print(f"check passed: merged vs adapter logits max |diff| {merge['max_abs_diff']:.3g} "
          f"(tolerance {merge['tolerance']:.3g}); every file holds its tensors as written; "
          f"probe answered by {by} -> {result['export_dir']}/export_check.json")
    for name, info in result["gguf_files"].items():
        size = human_size((Path(result["export_dir"]) / name).stat().st_size)
        agree = info.get(f"{by}_vs_merged", {}).get("top1_agreement", "-")
        types = ", ".join(f"{k} x{v}" for k, v in info["types"].items())
        print(f"  {name}: {size}, top-1 agreement with the merged model {agree} ({types})")
        if info.get("note"):
            print(f"  note: {info['note']}")
