"""``tunesmith chat``: interactive streamed chat, one ``--prompt``, or ``--compare`` base vs tuned."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("--prompt", help="ask one question, print the answer and exit")
    parser.add_argument("--compare", action="store_true",
                        help="answer with the base model and with base + adapter, side by side")
    parser.add_argument("--no-stream", action="store_true", help="print whole answers")


def run(args) -> int:
    from ..infer.engine import GenParams
    from ..infer.hf import load_engine
    from . import load_run_config

    cfg = load_run_config(args)
    params = GenParams.from_config(cfg.infer)
    if args.compare:
        return _compare(cfg, args, params)
    engine = load_engine(cfg)
    if args.prompt is not None:
        _answer(engine, _history(cfg, args.prompt), params, stream=not args.no_stream)
        return 0
    return _interactive(engine, cfg, params)


def _history(cfg, prompt: str) -> list[dict]:
    system = [{"role": "system", "content": cfg.infer.system}] if cfg.infer.system else []
    return system + [{"role": "user", "content": prompt}]


def _answer(engine, messages, params, stream: bool = True, label: str = "") -> str:
    if label:
        print(label, end="", flush=True)
    if not stream:
        text = engine.generate(messages, params).text
        print(text, flush=True)
        return text
    pieces = []
    for piece in engine.stream(messages, params):
        pieces.append(piece)
        print(piece, end="", flush=True)
    print(flush=True)
    return "".join(pieces)


def _compare(cfg, args, params) -> int:
    from ..errors import ConfigError
    from ..infer.hf import load_engine

    if not cfg.model.adapter_name_or_path:
        raise ConfigError("--compare needs adapter_name_or_path (the tuned adapter to compare)")
    prompts = [args.prompt] if args.prompt else [line.strip() for line in sys.stdin if line.strip()]
    base = load_engine(cfg, adapter="")
    base_answers = [base.generate(_history(cfg, p), params).text for p in prompts]
    del base
    tuned = load_engine(cfg)
    for prompt, before in zip(prompts, base_answers):
        after = tuned.generate(_history(cfg, prompt), params).text
        print(f"> {prompt}\n  base : {before}\n  tuned: {after}\n", flush=True)
    return 0


HELP = "commands: /reset (clear history)  /system TEXT (set system prompt)  /exit"


def _interactive(engine, cfg, params) -> int:
    system = cfg.infer.system
    history: list[dict] = []
    print(HELP)
    while True:
        try:
            line = input("\nuser> ").strip()
        except EOFError:
            return 0
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return 0
        if line == "/reset":
            history = []
            print("(history cleared)")
            continue
        if line.startswith("/system"):
            system = line[len("/system"):].strip() or None
            history = []
            print(f"(system prompt {'set' if system else 'cleared'}; history cleared)")
            continue
        history.append({"role": "user", "content": line})
        messages = ([{"role": "system", "content": system}] if system else []) + history
        reply = _answer(engine, messages, params, label="assistant> ")
        history.append({"role": "assistant", "content": reply})
