"""The exported model's README.md: where it came from, how it was checked, how to use it."""

from __future__ import annotations

from pathlib import Path


def write_card(out_dir: Path, meta: dict, report: dict) -> Path:
    """Write ``README.md`` into ``out_dir`` from the export metadata and check report."""
    merge, saved = report["merge"], report["saved"]
    shown = Path(meta["export_dir"]).name  # out_dir is still the temp dir here
    name = Path(str(meta["base"])).name
    lines = [
        f"# {name} + {Path(str(meta['adapter'])).name if meta['adapter'] else 'no adapter'} (merged)",
        "", "Exported with `tunesmith export`.", "",
        "| | |", "|---|---|",
        f"| base model | `{meta['base']}` |",
        f"| adapter | `{meta['adapter'] or '-'}` |",
        f"| chat template | {meta['template']} |",
        f"| dtype | {meta['dtype']} |",
        f"| format | {meta['format']}"
        + (f" (shards of at most {meta['export_size_gb']} GB) |" if meta["format"] != "gguf" else " |"),
        "", "## Check", "",
        f"On a {report['probe_tokens']}-token probe conversation, the merged model's logits differ "
        f"from base + adapter by at most {merge['max_abs_diff']:.3g} (tolerance "
        f"{merge['tolerance']:.3g}; top-1 agreement {merge['top1_agreement']:.3f}); all "
        f"{saved['tensors']} saved tensors, loaded back, equal the checked ones bit for bit. "
        f"Result: {'passed' if report['passed'] else 'FAILED'} (details: `export_check.json`).",
    ] + (_use_gguf(shown, meta["files"][0]) if meta["format"] == "gguf" else _use_hf(shown))
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _use_hf(shown: str) -> list[str]:
    return ["", "## Use", "", "```bash",
            f"tunesmith chat model_name_or_path={shown}",
            f"tunesmith serve model_name_or_path={shown}",
            "```", "", "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            f"model = AutoModelForCausalLM.from_pretrained(\"{shown}\")",
            f"tokenizer = AutoTokenizer.from_pretrained(\"{shown}\")",
            "```"]


def _use_gguf(shown: str, file: str) -> list[str]:
    return ["", "## Use", "", "```bash",
            f"llama-cli -m {shown}/{file} -cnv",
            f"tunesmith chat model_name_or_path={shown}/{file}",
            "```", "", "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            f"model = AutoModelForCausalLM.from_pretrained(\"{shown}\", gguf_file=\"{file}\")",
            f"tokenizer = AutoTokenizer.from_pretrained(\"{shown}\", gguf_file=\"{file}\")",
            "```"]
