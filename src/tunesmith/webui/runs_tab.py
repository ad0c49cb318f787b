"""Runs tab: every run under the output root with its config, final metrics and loss plot;
selected runs' loss curves on one plot."""

from __future__ import annotations

import gradio as gr

from .forms import to_yaml
from .roots import inside
from .runs import RUN_COLUMNS, list_runs, loss_frame, read_config, read_json, run_name, summary_row


def build(ui) -> None:
    L, root = ui.labels, ui.roots.output
    refresh = L(gr.Button("", elem_id="runs_refresh"), "refresh", "value")
    table = L(gr.Dataframe(headers=RUN_COLUMNS, label="", elem_id="runs_table", wrap=True),
              "runs_table")
    compare = L(gr.CheckboxGroup([], label="", elem_id="runs_compare"), "compare")
    plot = gr.LinePlot(loss_frame({}), x="step", y="loss", color="run", label="loss",
                       elem_id="runs_plot", height=300)
    detail = L(gr.Dropdown([], label="", elem_id="runs_detail"), "run_detail")
    with gr.Row():
        config = L(gr.Code("", language="yaml", label="", elem_id="runs_config"), "config")
        metrics = L(gr.JSON(label="", elem_id="runs_metrics"), "final_metrics")
        image = L(gr.Image(label="", type="filepath", elem_id="runs_image", interactive=False),
                  "loss_plot")

    def listing():
        runs = list_runs(root)
        names = [run_name(root, r) for r in runs]
        rows = [summary_row(root, r) for r in runs]
        return (rows, gr.update(choices=names, value=names[:2]),
                gr.update(choices=names, value=names[0] if names else None))

    def curves(selected):
        return loss_frame({n: inside(root, n, "run") for n in selected or []})

    def show(name):
        if not name:
            return "", None, None
        run = inside(root, name, "run")
        png = run / "training_loss.png"
        return (to_yaml(read_config(run)), read_json(run / "all_results.json"),
                str(png) if png.is_file() else None)

    refresh.click(listing, None, [table, compare, detail])
    compare.change(curves, compare, plot)
    detail.change(show, detail, [config, metrics, image])
    ui.on_load.append((listing, [table, compare, detail]))
