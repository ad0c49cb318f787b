"""``tunesmith chat``: interactive streamed chat, one ``--prompt``, or ``--compare`` base vs tuned."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("--prompt", help="ask one question, print the answer and exit")
    parser.add_argument("--compare", action="store_true",
                        help="answer with the base model and with base + adapter, side by side "
                             "(prompts from --prompt or one per line on stdin)")
    parser.add_argument("--no-stream", action="store_true", help="print whole answers")


def run(args) -> int:
    from ..infer.engine import GenParams
    from ..infer.load import load_engine
    from . import load_run_config

    cfg = load_run_config(args)
    params = GenParams.from_config(cfg.infer, seed=cfg.train.seed)
    if args.compare:
        return _compare(cfg, args, params)
    engine = load_engine(cfg)
    if args.prompt is not None:
        _answer(engine, _history(cfg.infer.system, [], args.prompt), params,
                stream=not args.no_stream)
        return 0
    return Session(engine, params, cfg.infer.system, stream=not args.no_stream).loop()


def _history(system: str | None, turns: list[dict], prompt: str) -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    return head + turns + [{"role": "user", "content": prompt}]


def _answer(engine, messages, params, stream: bool = True, label: str = "") -> str:
    """Print the model's answer (streamed piece by piece) and return it."""
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
    from ..infer.load import load_engine

    if not cfg.model.adapter_name_or_path:
        raise ConfigError("--compare needs adapter_name_or_path (the tuned adapter to compare)")
    prompts = [args.prompt] if args.prompt else [line.strip() for line in sys.stdin if line.strip()]
    base = load_engine(cfg, adapter="")
    before = [a.text for a in base.batch_generate([_history(cfg.infer.system, [], p) for p in prompts],
                                                  params)]
    del base
    tuned = load_engine(cfg)
    after = [a.text for a in tuned.batch_generate([_history(cfg.infer.system, [], p) for p in prompts],
                                                  params)]
    for prompt, b, a in zip(prompts, before, after):
        print(f"> {prompt}\n  base : {b}\n  tuned: {a}\n", flush=True)
    return 0


HELP = "commands: /reset (clear history)  /system TEXT (set system prompt)  /exit"


class Session:
    """The interactive loop: history, slash commands, streamed answers."""

    def __init__(self, engine, params, system: str | None, stream: bool = True):
        self.engine, self.params, self.system, self.stream = engine, params, system, stream
        self.turns: list[dict] = []

    def loop(self) -> int:
        print(HELP)
        while True:
            try:
                line = input("\nuser> ").strip()
            except EOFError:
                return 0
            if line in ("/exit", "/quit"):
                return 0
            if line:
                self.handle(line)

    def handle(self, line: str) -> None:
        """One input line: a slash command, or a user turn answered by the model."""
        from ..infer.engine import ContextLengthError

        if line == "/reset":
            self.turns = []
            print("(history cleared)")
        elif line == "/system" or line.startswith("/system "):
            self.system = line[len("/system"):].strip() or None
            self.turns = []
            print(f"(system prompt {'set' if self.system else 'cleared'}; history cleared)")
        elif line.startswith("/"):
            print(f"(unknown command {line.split()[0]}) {HELP}")
        else:
            messages = _history(self.system, self.turns, line)
            try:
                reply = _answer(self.engine, messages, self.params, self.stream, "assistant> ")
            except ContextLengthError as err:
                print(f"\n(error: {err}; use /reset)", flush=True)
                return
            self.turns += [messages[-1], {"role": "assistant", "content": reply}]
