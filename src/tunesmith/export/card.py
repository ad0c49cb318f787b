"""The exported model's README.md: where it came from, how it was checked, how to use it."""

from __future__ import annotations

from pathlib import Path


def write_card(out_dir: Path, meta: dict, report: dict) -> Path:
    """Write ``README.md`` into ``out_dir`` from the export metadata and check report."""
    shown = Path(meta["export_dir"]).name  # out_dir is still the temp dir here
    name = Path(str(meta["base"])).name
    gguf = meta["format"] == "gguf"
    lines = [
        f"# {name} + {Path(str(meta['adapter'])).name if meta['adapter'] else 'no adapter'} (merged)",
        "", "Exported with `tunesmith export`.", "",
        "| | |", "|---|---|",
        f"| base model | `{meta['base']}` |",
        f"| adapter | `{meta['adapter'] or '-'}` |",
        f"| chat template | {meta['template']} |",
        f"| dtype | {meta['dtype']} |",
        f"| format | {meta['format']}"
        + (f" (shards of at most {meta['export_size_gb']} GB) |" if not gguf else " |"),
        "", "## Check", "", _check_text(report, gguf),
    ]
    if gguf:
        lines += gguf_files_table(out_dir, report) + _use_gguf(shown, meta)
    else:
        lines += _use_hf(shown)
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check_text(report: dict, gguf: bool) -> str:
    merge, saved = report["merge"], report["saved"]
    text = (f"On a {report['probe_tokens']}-token probe conversation, the merged model's logits "
            f"differ from base + adapter by at most {merge['max_abs_diff']:.3g} (tolerance "
            f"{merge['tolerance']:.3g}; top-1 agreement {merge['top1_agreement']:.3f}); ")
    if gguf:
        text += (f"every file, read back, holds all {saved['tensors']} tensors as written (files "
                 "made by llama.cpp's quantizer: within its quantization error)")
        if report.get("gguf_logits_by") == "llama.cpp":
            text += ", and llama.cpp itself ran the probe on each file (agreement below)"
    else:
        text += (f"all {saved['tensors']} saved tensors, loaded back, equal the checked ones bit "
                 "for bit")
    return text + (f". Result: {'passed' if report['passed'] else 'FAILED'} "
                   "(details: `export_check.json`).")


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def gguf_files_table(out_dir: Path, report: dict) -> list[str]:
    """Each GGUF file: quantization, size, tensor types and llama.cpp's probe agreement."""
    from .gguf_quant import QUANTS

    lines = ["", "## Files", "", "| file | quantization | size | tensor types | "
             "top-1 agreement with the merged model (probe) |", "|---|---|---|---|---|"]
    for name, info in report.get("gguf_files", {}).items():
        quant = QUANTS.get(name.rsplit(".", 2)[-2])
        agree = info.get("llama.cpp_vs_merged") or info.get("transformers_vs_merged") or {}
        types = ", ".join(f"{k} x{v}" for k, v in info["types"].items())
        lines.append(f"| `{name}` | {quant.name}: {quant.summary} | "
                     f"{human_size((Path(out_dir) / name).stat().st_size)} | {types} | "
                     f"{agree.get('top1_agreement', '-')} |")
    return lines


def _use_gguf(shown: str, meta: dict) -> list[str]:
    files = [f for f in meta["files"] if f.endswith(".gguf")]
    first = files[0]
    return ["", "## Run it", "", "llama.cpp:", "", "```bash",
            f"llama-cli -m {shown}/{first} -cnv",
            f"llama-server -m {shown}/{first} --port 8080   # OpenAI-compatible API",
            f"tunesmith chat model_name_or_path={shown}/{first}",
            "```", "", f"Ollama (the `Modelfile` here uses `{first}`; edit its FROM line for "
            "another file):", "", "```bash",
            f"ollama create {shown} -f {shown}/Modelfile", f"ollama run {shown}",
            "```", "", "LM Studio: `lms import " f"{shown}/{first}` (or copy the file into "
            "`~/.lmstudio/models/<publisher>/<model>/`), then load it in the app.", "",
            "Python, with llama-cpp-python or transformers:", "", "```python",
            "from llama_cpp import Llama",
            f"llm = Llama(\"{shown}/{first}\")",
            "llm.create_chat_completion([{\"role\": \"user\", \"content\": \"Who are you?\"}])",
            "",
            "from transformers import AutoModelForCausalLM",
            f"model = AutoModelForCausalLM.from_pretrained(\"{shown}\", gguf_file=\"{first}\")",
            "```"]


def _use_hf(shown: str) -> list[str]:
    return ["", "## Use", "", "```bash",
            f"tunesmith chat model_name_or_path={shown}",
            f"tunesmith serve model_name_or_path={shown}",
            "```", "", "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            f"model = AutoModelForCausalLM.from_pretrained(\"{shown}\")",
            f"tokenizer = AutoTokenizer.from_pretrained(\"{shown}\")",
            "```"]
