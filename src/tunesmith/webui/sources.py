"""What the Train tab offers: models, datasets, and a preview of rendered examples and labels.

Choices come from the same places the CLI looks (bundled models, the model cache, a
``dataset_info.json`` registry), limited to the web UI's roots.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ..data.registry import INFO_FILE, load_registry
from ..hub import is_hub_id
from ..hub_cache import cached_hf_models
from ..model.bundled import BUNDLED
from ..paths import models_dir
from .roots import Roots, inside, inside_any
from .runs import is_adapter, is_model, list_runs, run_name

if TYPE_CHECKING:
    from ..config import RunConfig


DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt", ".arrow")


def model_choices(roots: Roots) -> list[str]:
    """Bundled names, converted models in the cache, full models saved under the output root,
    and hub IDs in the Hugging Face cache."""
    cached = [str(p) for p in sorted(models_dir().iterdir())
              if p.is_dir() and p.name not in BUNDLED and (p / "config.json").is_file()]
    saved = [str(r) for r in list_runs(roots.output) if is_model(r)]
    hub = list(dict.fromkeys(m.repo_id for m in cached_hf_models()))
    return list(BUNDLED) + cached + saved + hub


def check_model(roots: Roots, name: str) -> str:
    """A bundled name, a hub ID (org/name: fetched into the HF cache, never a path), or a path
    inside the data root, output root or model cache."""
    name = (name or "").strip()
    if name in BUNDLED or is_hub_id(name):
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


def preview(cfg: RunConfig, count: int = 3) -> str:
    """HTML of the first ``count`` examples as the model sees them: ``data.preview`` (the code
    behind ``tunesmith data preview``), so the UI shows exactly what training gets."""
    from ..data.preview import preview as data_preview
    from ..train.stages import get_stage, tokenizer_and_template

    tokenizer, template = tokenizer_and_template(cfg, quiet=True)
    kind = get_stage(cfg.method.stage).data_kind
    text, _ = data_preview(cfg, tokenizer, template, n=count, kind=kind)
    return f"<pre style='white-space:pre-wrap;max-height:480px;overflow:auto'>{html.escape(text)}</pre>"


def adapter_update(roots: Roots):
    """A Gradio update listing the adapters, the newest selected."""
    import gradio as gr

    names = adapter_choices(roots)
    return gr.update(choices=names, value=names[0] if names else None)
