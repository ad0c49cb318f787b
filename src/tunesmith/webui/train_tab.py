"""Train tab: model, data (with preview), method (controls generated from its dataclass),
hyperparameters; the equivalent YAML and command; start/stop/resume a ``tunesmith train``
child process and watch its ``trainer_log.jsonl``."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import forms, sources
from .i18n import t
from .jobs import Job
from .runs import loss_figure, safe_log

# Hyperparameter controls, labelled with their config keys; kinds and defaults come from the
# config dataclasses, choices from where the config checks them (forms.config_choices).
HYPER = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
         "gradient_accumulation_steps", "cutoff_len", "max_samples", "warmup_ratio",
         "logging_steps", "save_steps", "val_size", "seed")
CHOICE_HYPER = ("lr_scheduler_type", "train_on", "dtype", "save_strategy")
# Keys that name files: only settable through their own (containment-checked) controls.
PATH_KEYS = {"output_dir", "dataset_dir", "model_name_or_path", "adapter_name_or_path",
             "export_dir", "deepspeed", "fsdp", "resume_from_checkpoint", "eval_dataset"}


class TrainState:
    """The one training child process of this UI and the run folder it writes."""

    def __init__(self):
        self.job: Job | None = None
        self.run: Path | None = None


def _control(key: str, kind: str, value, **kw):
    kw.setdefault("elem_id", f"train_{key}")
    if kind == "bool":
        return gr.Checkbox(value=bool(value), label=key, **kw)
    if kind in ("int", "float"):
        return gr.Number(value=value, label=key, precision=0 if kind == "int" else None, **kw)
    return gr.Textbox(value=value, label=key, **kw)


def build(ui) -> None:
    """Lay out the tab and wire its events; ``ui`` is the App (roots, labels, state)."""
    L, roots = ui.labels, ui.roots
    with gr.Row():
        run_name = L(gr.Textbox(value="webui-run", label="", elem_id="train_run"), "run_name")
        model = L(gr.Dropdown(sources.model_choices(roots),
                              value=forms.config_default("model_name_or_path"), label="",
                              allow_custom_value=True, elem_id="train_model"), "model")
        template = gr.Textbox(value=forms.config_default("template"), label="template",
                              elem_id="train_template")
    trust = L(gr.Checkbox(False, label="", elem_id="train_trust"), "trust_remote_code")
    with gr.Row():
        names = sources.dataset_choices(roots)
        dataset = L(gr.Dropdown(names, value=names[:1], multiselect=True, allow_custom_value=True,
                                label="", elem_id="train_dataset"), "dataset")
        preview_btn = L(gr.Button("", elem_id="train_preview_btn"), "preview", "value")
    preview = gr.HTML(elem_id="train_preview")
    with gr.Row():
        stage = L(gr.Dropdown(forms.stage_names(), value="sft", label="", elem_id="train_stage"),
                  "stage")
        method = L(gr.Dropdown(forms.method_names(), value="lora", label="", elem_id="train_method"),
                   "method")
    stage_fields = forms.stage_fields()
    with L(gr.Accordion("", open=True, visible=False, elem_id="train_stage_params"),
           "stage_params") as stage_box:
        with gr.Row(equal_height=False):
            stage_controls = {k: _control(f.key, f.kind, None, visible=False,
                                          elem_id=f"train_stage_{f.key}")
                              for k, f in stage_fields.items()}
    fields = forms.method_fields()
    defaults = forms.method_defaults("lora")
    with L(gr.Accordion("", open=False, elem_id="train_method_params"), "method_params"):
        with gr.Row(equal_height=False):
            param_controls = {k: _method_control(f, defaults) for k, f in fields.items()}
    with L(gr.Accordion("", open=True), "hyper"):
        with gr.Row():
            hyper = {k: _control(k, forms.config_kind(k), forms.config_default(k)) for k in HYPER}
        with gr.Row():
            hyper.update({k: gr.Dropdown(forms.config_choices(k), value=forms.config_default(k),
                                         label=k, elem_id=f"train_{k}") for k in CHOICE_HYPER})
    extra = L(gr.Code("", language="yaml", label="", elem_id="train_extra", interactive=True), "extra")
    with gr.Row():
        show_btn = L(gr.Button("", elem_id="train_show"), "show_config", "value")
        start_btn = L(gr.Button("", variant="primary", elem_id="train_start"), "start", "value")
        stop_btn = L(gr.Button("", variant="stop", elem_id="train_stop"), "stop", "value")
        resume_btn = L(gr.Button("", elem_id="train_resume"), "resume", "value")
    with gr.Row():
        yaml_box = L(gr.Code("", language="yaml", label="", elem_id="train_yaml"), "yaml")
        cli_box = L(gr.Code("", language="shell", label="", elem_id="train_cli", wrap_lines=True),
                    "cli")
    status = L(gr.Markdown(t(ui.lang, "idle"), elem_id="train_status"), "idle", "value")
    plot = L(gr.Plot(label="", elem_id="train_loss"), "loss")
    log = L(gr.Textbox("", lines=10, max_lines=10, label="", elem_id="train_log"), "log")

    inputs = [run_name, model, template, trust, dataset, method, extra, *hyper.values(),
              *param_controls.values(), stage, *stage_controls.values()]
    keys = list(hyper), list(param_controls), list(stage_controls)

    def flat_config(*values):
        return _flat(ui, keys, values)

    def show(*values):
        try:
            flat, out = flat_config(*values)
        except Exception as exc:  # noqa: BLE001 - any bad input is shown, never crashes the UI
            return "", "", t(ui.lang, "error", msg=exc)
        yaml_path = str(out / "webui_train.yaml")
        return forms.to_yaml(flat), forms.cli_command("train", flat, yaml_path), gr.update()

    def do_preview(*values):
        from ..config import build_config

        try:
            flat, _ = flat_config(*values)
            return sources.preview(build_config(flat, "web UI"))
        except Exception as exc:  # noqa: BLE001
            return f"<p>{t(ui.lang, 'error', msg=exc)}</p>"

    def start(resume: bool, *values):
        return _start(ui, flat_config, values, resume)

    show_btn.click(show, inputs, [yaml_box, cli_box, status])
    preview_btn.click(do_preview, inputs, preview)
    start_btn.click(lambda *v: start(False, *v), inputs, [yaml_box, cli_box, status])
    resume_btn.click(lambda *v: start(True, *v), inputs, [yaml_box, cli_box, status])
    stop_btn.click(lambda: _stop(ui), None, status)
    method.change(lambda m: _method_updates(m, fields), method, list(param_controls.values()))
    stage.change(lambda st: _stage_updates(st, stage_fields), stage,
                 [stage_box, *stage_controls.values()])
    shown = gr.State(None)
    timer = gr.Timer(2.0)
    timer.tick(lambda seen: _watch(ui, seen), shown, [status, plot, log, shown])
    ui.train_status = status


def _method_control(field, defaults):
    value = forms.to_control(defaults.get(field.key), field) if field.key in defaults else None
    return _control(field.key, field.kind, value, visible=field.key in defaults,
                    elem_id=f"train_param_{field.key}")


def _method_updates(method: str, fields) -> list:
    """Show the chosen method's parameters (with its defaults), hide the others."""
    defaults = forms.method_defaults(method)
    return [gr.update(visible=k in defaults,
                      value=forms.to_control(defaults[k], f) if k in defaults else None)
            for k, f in fields.items()]


def _stage_updates(stage: str, fields) -> list:
    """Show the chosen stage's parameters (dpo: pref_beta, pref_loss, ...), hide the others."""
    defaults = forms.stage_defaults(stage)
    return [gr.update(visible=bool(defaults)),
            *[gr.update(visible=k in defaults,
                        value=forms.to_control(defaults[k], f) if k in defaults else None)
              for k, f in fields.items()]]


def _flat(ui, keys, values) -> tuple[dict, Path]:
    """The flat config the form describes, every path checked against the roots."""
    from .roots import run_dir

    hyper_keys, param_keys, stage_keys = keys
    run_name, model, template, trust, dataset, method, extra = values[:7]
    hyper = dict(zip(hyper_keys, values[7:7 + len(hyper_keys)]))
    rest = values[7 + len(hyper_keys):]
    params = dict(zip(param_keys, rest[:len(param_keys)]))
    stage = rest[len(param_keys)]
    stage_values = dict(zip(stage_keys, rest[len(param_keys) + 1:]))
    more = forms.parse_extra(extra)
    bad = sorted(PATH_KEYS & set(more))
    if bad:
        raise ValueError(f"set {', '.join(bad)} with its own control, not in the extra keys")
    out = run_dir(ui.roots, run_name)
    flat = {"model_name_or_path": sources.check_model(ui.roots, model), "template": template,
            "dataset": sources.check_datasets(ui.roots, dataset), "dataset_dir": str(ui.roots.data),
            "stage": stage, "method": method, **forms.drop_empty(hyper),
            **forms.method_params_from_controls(method, params),
            **forms.stage_params_from_controls(stage, stage_values), **more,
            "output_dir": str(out), "do_train": True}
    if trust:
        flat["trust_remote_code"] = True  # only when the user ticked it
    return forms.validated(forms.drop_empty(flat)), out


def _start(ui, flat_config, values, resume: bool):
    state = ui.train
    if state.job and state.job.running:
        return gr.update(), gr.update(), t(ui.lang, "already")
    try:
        flat, out = flat_config(*values)
        if resume:
            flat["resume_from_checkpoint"] = "auto"
            flat["overwrite_output_dir"] = False
        state.job, state.run = Job("train", out), out
        argv = state.job.start(flat)
    except Exception as exc:  # noqa: BLE001
        return gr.update(), gr.update(), t(ui.lang, "error", msg=exc)
    yaml_path = str(out / "webui_train.yaml")
    return (forms.to_yaml(flat), forms.cli_command("train", flat, yaml_path),
            t(ui.lang, "started", cmd=" ".join(argv[-2:])))


def _stop(ui) -> str:
    job = ui.train.job
    return t(ui.lang, "stopped" if job and job.stop() else "nothing_to_stop")


def _watch(ui, shown=None):
    """Status line, loss curve and log tail of the current (or last) training run.

    ``shown`` is what this browser tab last displayed (a per-tab gr.State): a finished run
    is not redrawn every tick, which would make the plot flicker.
    """
    state = ui.train
    rows = safe_log(state.run) if state.job else []
    seen = [id(state.job), len(rows), state.job and state.job.returncode, ui.lang]
    if state.job is None or (seen == shown and seen[2] is not None):
        return gr.update(), gr.update(), gr.update(), shown
    status = f"**{_state_text(ui, state.job)}** · {_progress(ui.lang, rows)}"
    return status, loss_figure({state.run.name: state.run}), state.job.log_tail(10), seen


def _state_text(ui, job: Job) -> str:
    rc = job.returncode
    if rc is None:
        return t(ui.lang, "running")
    if job.stopped:
        return t(ui.lang, "stopped")
    return t(ui.lang, "finished") if rc == 0 else t(ui.lang, "failed", rc=rc)


def _progress(lang: str, rows: list[dict]) -> str:
    loss_rows = [r for r in rows if "loss" in r]
    if not loss_rows:
        return ""
    last = loss_rows[-1]
    elapsed = last.get("elapsed_s") or 0
    tps = round(last.get("tokens_seen", 0) / elapsed) if elapsed else "-"
    return t(lang, "progress", step=last["step"], total=last.get("total_steps", "?"),
             loss=f"{last['loss']:.4f}", tps=tps, mem=last.get("peak_mem_mb", "-"),
             elapsed=round(elapsed), eta=round(last.get("remaining_s", 0)))
