"""Build the Gradio app (tabs in their own modules) and launch it on loopback by default."""

from __future__ import annotations

import os
import signal
import sys

from .i18n import LANGUAGES, Labels, t
from .roots import DEFAULT_HOST, DEFAULT_PORT, Roots, public_bind_warning

AUTH_ENV = "TUNESMITH_WEBUI_AUTH"  # "user:password"; an env var so it never shows in `ps`


class App:
    """What every tab shares: the roots, the language labels, the jobs and loaded engines."""

    def __init__(self, roots: Roots, lang: str = "en"):
        from .chat_tab import EngineCache
        from .train_tab import TrainState

        self.roots, self.lang = roots, lang
        self.labels = Labels(lang)
        self.train = TrainState()
        self.engines = EngineCache()
        self.on_load: list = []

    def build(self):
        import gradio as gr

        from . import chat_tab, eval_tab, export_tab, runs_tab, train_tab

        L = self.labels
        # No analytics or version checks: nothing leaves this machine.
        with gr.Blocks(title=t(self.lang, "title"), analytics_enabled=False) as demo:
            with gr.Row():
                L(gr.Markdown("", elem_id="title"), "title", "heading")
                lang = gr.Dropdown(list(LANGUAGES), value=self.lang, label=t(self.lang, "lang"),
                                   elem_id="lang", scale=0)
            L(gr.Markdown("", elem_id="subtitle"), "subtitle", "value")
            for key, module in (("tab_train", train_tab), ("tab_chat", chat_tab),
                                ("tab_eval", eval_tab), ("tab_export", export_tab),
                                ("tab_runs", runs_tab)):
                with L(gr.Tab(t(self.lang, key), elem_id=key), key):
                    module.build(self)
            lang.change(self.switch, lang, L.components())
            demo.load(lambda: L.updates(self.lang), None, L.components())
            for fn, outputs in self.on_load:
                demo.load(fn, None, outputs)
        return demo

    def switch(self, lang: str):
        self.lang = lang  # status messages from now on are in this language too
        return self.labels.updates(lang)


def launch(roots: Roots, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
           share: bool = False, lang: str = "en", block: bool = True):
    """Serve the UI. Files are served only from the output root (runs and their plots)."""
    auth = _auth()
    warning = public_bind_warning(host, share, auth is not None)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    app = App(roots, lang)
    demo = app.build()
    if block:  # SIGTERM ends the UI like Ctrl-C, so the finally below stops a training child
        signal.signal(signal.SIGTERM, _interrupt)
    demo.queue(default_concurrency_limit=4)
    try:
        demo.launch(server_name=host, server_port=port, share=share, auth=auth,
                    allowed_paths=[str(roots.output)], inbrowser=False, quiet=False,
                    show_error=True, prevent_thread_lock=not block, ssr_mode=False)
    finally:
        if block and app.train.job:
            app.train.job.kill()
    return app, demo


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _auth():
    value = os.environ.get(AUTH_ENV)
    if not value or ":" not in value:
        return None
    user, password = value.split(":", 1)
    return (user, password)
