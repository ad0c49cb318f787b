"""Chat tab: the base model, base + adapter, or both side by side, streamed, through the same
``infer.load_engine`` and ``Engine.stream`` as ``tunesmith chat``."""

from __future__ import annotations

import threading

import gradio as gr

from ..config import build_config
from ..infer.engine import GenParams
from . import picker, sources
from .i18n import t

MODES = "base,adapter,compare"


class EngineCache:
    """Loaded engines by (model, adapter, trust); at most two kept (base and tuned)."""

    def __init__(self, size: int = 2):
        self.size, self.engines, self.lock = size, {}, threading.Lock()

    def get(self, model: str, adapter: str | None, trust: bool):
        from ..infer.load import load_engine

        key = (model, adapter or "", trust)
        with self.lock:
            if key not in self.engines:
                flat = {"model_name_or_path": model, "trust_remote_code": trust}
                if adapter:
                    flat["adapter_name_or_path"] = adapter
                while len(self.engines) >= self.size:
                    self.engines.pop(next(iter(self.engines)))
                self.engines[key] = load_engine(build_config(flat, "web UI"), adapter or "")
            return self.engines[key]


def build(ui) -> None:
    L = ui.labels
    with gr.Row():
        mode = L(gr.Radio([(t(ui.lang, f"mode_{m}"), m) for m in MODES.split(",")], value="base",
                          label="", elem_id="chat_mode"), "mode")
        L(mode, MODES, "choices")
        model, adapter = picker.model_and_adapter(ui, "chat")
    trust = L(gr.Checkbox(False, label="", elem_id="chat_trust"), "trust_remote_code")
    system = L(gr.Textbox("", label="", elem_id="chat_system"), "system")
    with L(gr.Accordion("", open=True), "sampling"):
        with gr.Row():
            max_new = gr.Slider(1, 1024, value=128, step=1, label="max_new_tokens", elem_id="chat_max_new")
            temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="temperature")
            top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="top_p")
            top_k = gr.Slider(0, 200, value=50, step=1, label="top_k")
            rep = gr.Slider(0.8, 2, value=1.0, step=0.05, label="repetition_penalty")
    with gr.Row():
        left = L(gr.Chatbot(label="", elem_id="chat_left", height=320), "base_chat")
        right = L(gr.Chatbot(label="", elem_id="chat_right", height=320, visible=False), "tuned_chat")
    with gr.Row():
        message = L(gr.Textbox("", label="", elem_id="chat_message", scale=4), "message")
        send = L(gr.Button("", variant="primary", elem_id="chat_send", scale=0), "send", "value")
        clear = L(gr.Button("", elem_id="chat_clear", scale=0), "clear", "value")
    error = gr.Markdown("", elem_id="chat_status")

    def respond(msg, hist_l, hist_r, mode, model, adapter, trust, system, *sampling):
        yield from _respond(ui, msg, hist_l or [], hist_r or [], mode, model, adapter, trust,
                            system, GenParams(int(sampling[0]), *sampling[1:3], int(sampling[3]),
                                              sampling[4]))

    inputs = [message, left, right, mode, model, adapter, trust, system, max_new, temperature,
              top_p, top_k, rep]
    send.click(respond, inputs, [left, right, message, error])
    message.submit(respond, inputs, [left, right, message, error])
    clear.click(lambda: ([], [], ""), None, [left, right, error])
    mode.change(lambda m: gr.update(visible=m == "compare"), mode, right)


def _respond(ui, msg, hist_l, hist_r, mode, model, adapter, trust, system, params):
    """Stream the answer(s): the left pane is the base model unless mode is "adapter"."""
    if not (msg or "").strip():
        yield hist_l, hist_r, "", ""
        return
    try:
        model = sources.check_model(ui.roots, model)
        adapter = sources.check_adapter(ui.roots, adapter) if mode != "base" else None
        if mode != "base" and not adapter:
            raise ValueError(t(ui.lang, "need_adapter"))
        panes = [(hist_l, adapter if mode == "adapter" else None)]
        if mode == "compare":
            panes.append((hist_r, adapter))
        for hist, adapter_dir in panes:
            yield hist_l, hist_r, "", t(ui.lang, "working")
            engine = ui.engines.get(model, adapter_dir, bool(trust))
            yield from _stream_into(engine, hist, msg, system, params, hist_l, hist_r)
        yield hist_l, hist_r, "", t(ui.lang, "done")
    except Exception as exc:  # noqa: BLE001 - shown in the UI, the server keeps running
        yield hist_l, hist_r, msg, t(ui.lang, "error", msg=exc)


def _stream_into(engine, hist, msg, system, params, hist_l, hist_r):
    """Append the user turn and the growing assistant turn to ``hist``, yielding each piece."""
    messages = ([{"role": "system", "content": system}] if system else []) + \
        [{"role": m["role"], "content": _text(m["content"])} for m in hist] + \
        [{"role": "user", "content": msg}]
    hist += [{"role": "user", "content": msg}, {"role": "assistant", "content": ""}]
    for piece in engine.stream(messages, params):
        hist[-1]["content"] += piece
        yield hist_l, hist_r, "", gr.update()


def _text(content) -> str:
    """Gradio may hand back message content as a list of parts; the engine takes text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)
