"""The model + adapter picker of the Chat, Evaluate and Export tabs: one component."""

from __future__ import annotations

import gradio as gr

from . import forms, sources


def model_and_adapter(ui, prefix: str):
    """Model and adapter dropdowns and a refresh button, laid out in the caller's row.

    Args:
        ui: the App (its roots and label registry).
        prefix: the tab's element-id prefix (``chat``, ``eval``, ``export``).
    Returns:
        ``(model, adapter)`` dropdowns; the refresh button re-reads both lists.
    """
    L, roots = ui.labels, ui.roots
    model = L(gr.Dropdown(sources.model_choices(roots),
                          value=forms.config_default("model_name_or_path"),
                          allow_custom_value=True, label="", elem_id=f"{prefix}_model"), "model")
    adapters = sources.adapter_choices(roots)
    adapter = L(gr.Dropdown(adapters, value=adapters[0] if adapters else None,
                            allow_custom_value=True, label="", elem_id=f"{prefix}_adapter"),
                "adapter")
    refresh = L(gr.Button("", elem_id=f"{prefix}_refresh", scale=0), "refresh", "value")
    refresh.click(lambda: (gr.update(choices=sources.model_choices(roots)),
                           sources.adapter_update(roots)), None, [model, adapter])
    return model, adapter
