"""Export tab: ``tunesmith export`` (merge the adapter, save safetensors shards in a dtype) in a
child process, then the merge check it writes (``export_check.json``)."""

from __future__ import annotations

import gradio as gr

from . import forms, picker, sources
from .i18n import t
from .jobs import Job, follow, verb_available
from .runs import read_json


def build(ui) -> None:
    L = ui.labels
    L(gr.Markdown("", elem_id="export_help"), "export_help", "value")
    with gr.Row():
        model, adapter = picker.model_and_adapter(ui, "export")
    with gr.Row():
        name = L(gr.Textbox("merged", label="", elem_id="export_name"), "export_name")
        size = gr.Number(forms.config_default("export_size"), label="export_size (GB per shard)",
                         elem_id="export_size")
        dtype = gr.Dropdown(forms.config_choices("export_dtype"),
                            value=forms.config_default("export_dtype"), label="export_dtype",
                            elem_id="export_dtype")
    run_btn = L(gr.Button("", variant="primary", elem_id="export_run"), "export_run", "value")
    log = L(gr.Textbox("", lines=6, max_lines=6, label="", elem_id="export_log"), "job_log")
    check = L(gr.JSON(label="", elem_id="export_check"), "export_check")

    def run(*values):
        yield from _run(ui, *values)

    run_btn.click(run, [model, adapter, name, size, dtype], [log, check])


def _run(ui, model, adapter, name, size, dtype):
    if not verb_available("export"):
        yield t(ui.lang, "export_missing"), None
        return
    try:
        from .roots import run_dir

        out = run_dir(ui.roots, name)
        flat = forms.validated(forms.drop_empty({
            "model_name_or_path": sources.check_model(ui.roots, model),
            "adapter_name_or_path": sources.check_adapter(ui.roots, adapter),
            "export_dir": str(out), "export_size": size, "export_dtype": dtype}))
        # The job's YAML and log go beside, not inside, the export folder it writes.
        job = Job("export", ui.roots.output / ".webui" / out.relative_to(ui.roots.output))
        job.start(flat)
    except Exception as exc:  # noqa: BLE001 - shown in the UI
        yield t(ui.lang, "error", msg=exc), None
        return
    for tail in follow(job):
        yield tail, gr.update()
    yield job.log_tail(12), read_json(out / "export_check.json")
