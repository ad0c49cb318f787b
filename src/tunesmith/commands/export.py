"""``tunesmith export``: merge an adapter into its base, verify it, save it (``export_format``:
safetensors shards or one GGUF file).

Takes LLaMA-Factory's flags as they are: ``--model_name_or_path --adapter_name_or_path
--template --finetuning_type --export_dir --export_size --export_device --export_legacy_format``.
"""

from __future__ import annotations


def run(args) -> int:
    from ..export.merge import run_export
    from . import load_run_config

    cfg = load_run_config(args)
    result = run_export(cfg)
    merge, saved = result["merge"], result["saved"]
    print(f"exported {result['dtype']} {cfg.infer.export_format} to {result['export_dir']} "
          f"({len(result['files'])} files)")
    drift = result[f"saved_{result['dtype']}_vs_adapter"]
    print(f"check passed: merged vs adapter logits max |diff| {merge['max_abs_diff']:.3g} "
          f"(tolerance {merge['tolerance']:.3g}, top-1 agreement {merge['top1_agreement']:.3f}); "
          f"{saved['tensors']} saved tensors equal the merged ones bit for bit; saved "
          f"{result['dtype']} model vs adapter max |diff| {drift['max_abs_diff']:.3g} "
          f"-> {result['export_dir']}/export_check.json")
    return 0
