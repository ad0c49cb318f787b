"""What the Train tab offers: models, datasets, and a preview of rendered examples and labels.

Choices come from the same places the CLI looks (bundled models, the model cache, a
``dataset_info.json`` registry), limited to the web UI's roots.
"""

from __future__ import annotations

import html

from ..data.registry import INFO_FILE, load_registry
from ..model.bundled import BUNDLED
from ..paths import models_dir
from .roots import Roots, inside, inside_any
from .runs import is_adapter, is_model, list_runs, run_name

DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt", ".arrow")


def model_choices(roots: Roots) -> list[str]:
    """Bundled names, converted models in the cache, and full models saved under the output root."""
    cached = [str(p) for p in sorted(models_dir().iterdir())
              if p.is_dir() and p.name not in BUNDLED and (p / "config.json").is_file()]
    saved = [str(r) for r in list_runs(roots.output) if is_model(r)]
    return list(BUNDLED) + cached + saved


def check_model(roots: Roots, name: str) -> str:
    """A bundled name, or a path inside the data root, output root or model cache."""
    name = (name or "").strip()
    if name in BUNDLED:
        return name
    return str(inside_any([roots.data, roots.output, models_dir()], name, "model"))


def adapter_choices(roots: Roots) -> list[str]:
    """Run names under the output root that hold an adapter."""
    return [run_name(roots.output, r) for r in list_runs(roots.output) if is_adapter(r)]


def check_adapter(roots: Roots, name: str) -> str | None:
    name = (name or "").strip()
    return str(inside(roots.output, name, "adapter")) if name else None


def dataset_choices(roots: Roots) -> list[str]:
    """Registry names from ``data_root/dataset_info.json``, then data files by relative path."""
    names = list(load_registry(roots.data)) if roots.data.is_dir() else []
    files = sorted(str(p.relative_to(roots.data)) for p in roots.data.rglob("*")
                   if p.is_file() and p.suffix in DATA_SUFFIXES and p.name != INFO_FILE)
    return names + files


def check_datasets(roots: Roots, names: list[str]) -> list[str]:
    """Registry names as they are; file paths resolved inside the data root."""
    registry = load_registry(roots.data) if roots.data.is_dir() else {}
    out = []
    for name in names or []:
        base = name.rsplit(":", 1)[0] if name.rsplit(":", 1)[-1].isdigit() else name
        out.append(name if base in registry else str(inside(roots.data, name, "dataset")))
    return out


def preview(cfg, count: int = 3) -> str:
    """HTML of the first ``count`` examples as the model sees them, labels highlighted.

    Uses the training code path: ``data.load.read_conversations``, ``templates`` and
    ``tokenize.encode_conversation`` (the same tokens and labels training gets).
    """
    from ..data.load import read_conversations
    from ..data.report import DataReport
    from ..data.templates import get_template
    from ..data.tokenize import IGNORE, encode_conversation, encode_text
    from ..model.load import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(cfg.model, resolve_model_path(cfg.model.model_name_or_path, quiet=True))
    template = None if cfg.method.stage == "pt" else get_template(
        cfg.model.template, tokenizer, cfg.model.default_system)
    report = DataReport()
    convs = read_conversations(cfg.data, cfg.data.dataset, report)[:count]
    blocks = []
    for conv in convs:
        examples = (encode_text(conv, tokenizer, cutoff_len=cfg.data.cutoff_len) if conv.text is not None
                    else encode_conversation(conv, tokenizer, template, train_on=cfg.data.train_on,
                                             cutoff_len=cfg.data.cutoff_len))
        for ex in examples:
            blocks.append(_render(tokenizer, ex.input_ids, [lab != IGNORE for lab in ex.labels],
                                  conv.origin))
    head = f"<p>{html.escape(report.summary())}</p>"
    return head + "".join(blocks)


def _render(tokenizer, ids: list[int], labelled: list[bool], origin: str) -> str:
    """Token runs: supervised ones (the loss is computed on them) on a green background."""
    parts, run, flag = [], [], None
    for tok, lab in zip(ids, labelled):
        if flag is not None and lab != flag:
            parts.append(_span(tokenizer.decode(run), flag))
            run = []
        run.append(tok)
        flag = lab
    if run:
        parts.append(_span(tokenizer.decode(run), flag))
    n = sum(labelled)
    return (f"<div class='ts-example'><small>{html.escape(origin)} · {len(ids)} tokens, "
            f"{n} labelled</small><pre style='white-space:pre-wrap'>{''.join(parts)}</pre></div>")


def _span(text: str, labelled: bool) -> str:
    style = "background:#c8f7c5" if labelled else "color:#666"
    return f"<span style='{style}'>{html.escape(text)}</span>"



def adapter_update(roots: Roots):
    """A Gradio update listing the adapters, the newest selected."""
    import gradio as gr

    names = adapter_choices(roots)
    return gr.update(choices=names, value=names[0] if names else None)
