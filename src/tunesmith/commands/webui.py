"""``tunesmith webui``: the browser UI (Gradio), on 127.0.0.1 unless --host/--share say otherwise."""

from __future__ import annotations


def add_arguments(parser) -> None:
    from ..webui.roots import DEFAULT_HOST, DEFAULT_PORT

    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 7860)")
    parser.add_argument("--share", action="store_true",
                        help="make a public Gradio share link (set TUNESMITH_WEBUI_AUTH=user:pass)")
    parser.add_argument("--data-root", default="examples/data",
                        help="the only folder datasets are read from (default examples/data)")
    parser.add_argument("--output-root", default="saves",
                        help="the only folder runs are written to and read from (default saves)")
    parser.add_argument("--lang", choices=("en", "zh"), default="en", help="interface language")


def run(args) -> int:
    from ..errors import require

    require("gradio", "webui", "the web UI")
    from ..webui.app import launch
    from ..webui.roots import Roots

    if args.overrides or args.config:
        from ..errors import ConfigError

        raise ConfigError("webui takes no config file or key=value overrides; choose them in the UI")
    roots = Roots.create(args.data_root, args.output_root)
    print(f"data root: {roots.data}\noutput root: {roots.output}", flush=True)
    launch(roots, host=args.host, port=args.port, share=args.share, lang=args.lang)
    return 0
