"""An Ollama ``Modelfile`` beside the GGUF files: ``ollama create NAME -f Modelfile`` runs it.

Ollama does not run Jinja chat templates; it wants the prompt format in Go's ``text/template``
language. The model's format is detected by rendering a probe conversation with the training
template (ChatML, Llama 3 and Mistral ``[INST]`` are known), and the matching Go template is
written with its stop tokens. With ``.Messages``, Ollama puts the Modelfile's ``SYSTEM`` first
as a system message when a request has none, so a chat template's built-in default system
prompt (SmolLM2's, Qwen's) becomes ``SYSTEM``. Parameters are tunesmith chat's defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass(frozen=True)
class PromptFormat:
    """A chat format Ollama can run: how to spot it, its Go template, its default system."""

    name: str
    marker: str  # present in a rendered conversation of this format
    template: str  # Go text/template over .Messages (Role, Content); {eos}: the EOS token
    system: str  # regex: the system prompt in a rendering

    def go_template(self, tokenizer, template=None) -> str:
        """The Go template with this tokenizer's EOS text filled in, and the BOS text in front
        when the chat template writes it but the tokenizer does not add it (runtimes add BOS
        only when the GGUF says the tokenizer does)."""
        text = self.template.replace("{eos}", tokenizer.eos_token or "")
        return bos_prefix(tokenizer, template) + text if template is not None else text


FORMATS: Registry[PromptFormat] = Registry("chat format", key="template")
FORMATS.add("chatml", PromptFormat(
    "chatml", "<|im_start|>user",
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n",
    r"<\|im_start\|>system\n(.*?)<\|im_end\|>"))
FORMATS.add("llama3", PromptFormat(
    "llama3", "<|start_header_id|>user",
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
    r"<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>"))
FORMATS.add("mistral", PromptFormat(
    "mistral", "[INST]",
    # the system prompt opens the first user turn; assistant turns end with </s>
    "{{- range $i, $m := .Messages }}{{ if eq .Role \"user\" }}[INST] "
    "{{ if eq $i 1 }}{{ $.System }}\n\n{{ end }}{{ .Content }} [/INST]"
    "{{ else if eq .Role \"assistant\" }} {{ .Content }}{eos}{{ end }}{{ end }}",
    r"\[INST\] (.*?)\n\n"))

PROBE = [{"role": "user", "content": "Hi"}]


def detect_format(tokenizer, template) -> PromptFormat | None:
    """The known format whose marker appears in the template's rendering, else None."""
    text = template.render(tokenizer, PROBE, add_generation_prompt=True)
    return next((f for f in FORMATS.values() if f.marker in text), None)


def bos_prefix(tokenizer, template) -> str:
    """The BOS text the chat template writes itself (empty when the tokenizer adds BOS)."""
    bos = tokenizer.bos_token
    writes_bos = "bos_token" in (template.jinja or tokenizer.chat_template or "")
    if not bos or not writes_bos or tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]:
        return ""
    return bos if template.render(tokenizer, PROBE, add_generation_prompt=True).startswith(bos) else ""


def default_system(tokenizer, template, fmt: PromptFormat) -> str | None:
    """The system prompt the template writes when a conversation has none (if any)."""
    if template.default_system:
        return template.default_system
    text = template.render(tokenizer, PROBE, add_generation_prompt=True)
    found = re.search(fmt.system, text, flags=re.S)
    return found.group(1) if found and found.group(1) != PROBE[0]["content"] else None


def stop_tokens(tokenizer, template) -> list[str]:
    """End-of-turn strings and EOS, so Ollama stops where the model was trained to."""
    stops = [s.strip() for s in template.stop_strings(tokenizer) if s.strip()]
    if tokenizer.eos_token:
        stops.append(tokenizer.eos_token)
    return list(dict.fromkeys(stops))


def modelfile(gguf_file: str, tokenizer, template, cfg: RunConfig) -> str:
    """The Modelfile text for ``gguf_file`` (a path relative to the Modelfile)."""
    fmt = detect_format(tokenizer, template)
    lines = ["# Ollama Modelfile written by tunesmith export: ollama create NAME -f Modelfile",
             f"FROM ./{gguf_file}", ""]
    if fmt is None:
        lines += ["# The chat format was not recognised (known: "
                  f"{', '.join(FORMATS.names())}); Ollama uses the chat template in the file.", ""]
    else:
        go = fmt.go_template(tokenizer, template)
        lines += [f"# chat format: {fmt.name}", f'TEMPLATE """{go}"""', ""]
        system = default_system(tokenizer, template, fmt)
        if system:
            lines += [f'SYSTEM """{system}"""', ""]
    lines += [f'PARAMETER stop "{_quote(s)}"' for s in stop_tokens(tokenizer, template)]
    lines += [f"PARAMETER {k} {v}" for k, v in parameters(cfg).items()]
    return "\n".join(lines) + "\n"


def parameters(cfg: RunConfig) -> dict:
    """tunesmith chat's sampling defaults in Ollama's names (greedy unless do_sample)."""
    infer = cfg.infer
    greedy = not infer.do_sample or infer.temperature <= 0
    return {"temperature": 0 if greedy else infer.temperature, "top_p": infer.top_p,
            "top_k": infer.top_k, "repeat_penalty": infer.repetition_penalty,
            "num_predict": infer.max_new_tokens}


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def write_modelfile(out_dir: Path, gguf_file: str, tokenizer, template, cfg: RunConfig) -> Path:
    """Write ``Modelfile`` into ``out_dir`` (FROM the given GGUF file)."""
    path = Path(out_dir) / "Modelfile"
    path.write_text(modelfile(gguf_file, tokenizer, template, cfg), encoding="utf-8")
    return path


def create_command(name: str, export_dir: str | Path) -> str:
    """The ``ollama create`` line for an export."""
    return f"ollama create {name} -f {Path(export_dir) / 'Modelfile'}"


OLLAMA_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)?(:[A-Za-z0-9._-]+)?$")
