"""Evaluate tab: ``tunesmith predict`` on a dataset in a child process, then its metrics
(``predict_results.json``) and predictions vs references (``generated_predictions.jsonl``)."""

from __future__ import annotations

import json

import gradio as gr

from . import forms, picker, sources
from .i18n import t
from .jobs import Job, follow, verb_available
from .runs import read_json

TABLE_COLUMNS = ["prompt", "predict", "label"]
# The tab's own starting values where the config's defaults (every row, 512 new tokens) would
# make a first evaluation take minutes on a CPU; both stay editable. Others are the config's.
QUICK = {"max_samples": 16, "max_new_tokens": 64}


def build(ui) -> None:
    L, roots = ui.labels, ui.roots
    L(gr.Markdown("", elem_id="eval_help"), "eval_help", "value")
    with gr.Row():
        model, adapter = picker.model_and_adapter(ui, "eval")
    names = sources.dataset_choices(roots)
    dataset = L(gr.Dropdown(names, value=names[:1], multiselect=True, allow_custom_value=True,
                            label="", elem_id="eval_dataset"), "dataset")
    with gr.Row():
        max_samples = gr.Number(QUICK["max_samples"], precision=0, label="max_samples",
                                elem_id="eval_max_samples")
        max_new = gr.Number(QUICK["max_new_tokens"], precision=0, label="max_new_tokens",
                            elem_id="eval_max_new")
        batch = gr.Number(forms.config_default("per_device_eval_batch_size"), precision=0,
                          label="per_device_eval_batch_size")
        cutoff = gr.Number(forms.config_default("cutoff_len"), precision=0, label="cutoff_len")
    run_btn = L(gr.Button("", variant="primary", elem_id="eval_run"), "eval_run", "value")
    log = L(gr.Textbox("", lines=6, max_lines=6, label="", elem_id="eval_log"), "job_log")
    metrics = L(gr.JSON(label="", elem_id="eval_metrics"), "metrics")
    table = L(gr.Dataframe(headers=TABLE_COLUMNS, label="", elem_id="eval_table", wrap=True),
              "predictions")

    def run(*values):
        yield from _run(ui, *values)

    run_btn.click(run, [model, adapter, dataset, max_samples, max_new, batch, cutoff],
                  [log, metrics, table])


def _run(ui, model, adapter, dataset, max_samples, max_new, batch, cutoff):
    if not verb_available("predict"):
        yield t(ui.lang, "predict_missing"), None, None
        return
    try:
        out, flat = _config(ui, model, adapter, dataset, max_samples, max_new, batch, cutoff)
        job = Job("predict", out)
        job.start(flat)
    except Exception as exc:  # noqa: BLE001 - shown in the UI
        yield t(ui.lang, "error", msg=exc), None, None
        return
    for tail in follow(job):
        yield tail, gr.update(), gr.update()
    yield job.log_tail(12), read_json(out / "predict_results.json"), _predictions(out)


def _config(ui, model, adapter, dataset, max_samples, max_new, batch, cutoff):
    from .roots import run_dir

    adapter_dir = sources.check_adapter(ui.roots, adapter)
    out = run_dir(ui.roots, f"{adapter or 'base'}/predict")
    flat = {"model_name_or_path": sources.check_model(ui.roots, model),
            "adapter_name_or_path": adapter_dir,
            "dataset": sources.check_datasets(ui.roots, dataset),
            "dataset_dir": str(ui.roots.data), "max_samples": max_samples,
            "max_new_tokens": max_new, "per_device_eval_batch_size": batch, "cutoff_len": cutoff,
            "output_dir": str(out)}
    return out, forms.validated(forms.drop_empty(flat))


def _predictions(out, limit: int = 200) -> list[list[str]]:
    path = out / "generated_predictions.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [[r.get(c, "") for c in TABLE_COLUMNS] for r in rows[:limit]]
