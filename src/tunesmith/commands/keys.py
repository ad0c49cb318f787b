"""``tunesmith keys``: every configuration key, its default and what it does."""

from __future__ import annotations

import dataclasses


def add_arguments(parser) -> None:
    parser.add_argument("--method", help="also list the parameters of this method only")
    parser.add_argument("--llamafactory", action="store_true",
                        help="list the LLaMA-Factory keys accepted without effect and the ones "
                             "refused, each with its reason")


def _rows(cls):
    from ..config import NOT_KEYS

    for f in dataclasses.fields(cls):
        if f.name in NOT_KEYS:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        yield f.name, default


def _print_llamafactory() -> int:
    from ..compat.llamafactory_keys import NO_EFFECT, REFUSED

    print("[LLaMA-Factory keys accepted without effect: a note says why]")
    for key, reason in sorted(NO_EFFECT.items()):
        print(f"  {key:36} {reason}")
    print("[LLaMA-Factory keys refused (LLaMA-Factory's default value is accepted with a note)]")
    for key, refusal in sorted(REFUSED.items()):
        print(f"  {key:36} {refusal.instead}")
    print("Every other LLaMA-Factory key works as there; HF TrainingArguments keys given at the "
          "top level go to the Trainer (trainer_args).")
    return 0


def run(args) -> int:
    if getattr(args, "llamafactory", False):
        return _print_llamafactory()
    from ..config import ALIASES, SECTIONS
    from ..config_help import KEY_HELP
    from ..methods import METHODS

    for section, cls in SECTIONS.items():
        print(f"[{section}]")
        for key, default in _rows(cls):
            print(f"  {key:30} {str(default):18} {KEY_HELP.get(key, '')}")
    for name, method in sorted(METHODS.items()):
        if args.method and name != args.method:
            continue
        fields = list(_rows(method.params_cls))
        print(f"[method: {name}] {method.summary}")
        for key, default in fields:
            print(f"  {key:30} {str(default):18} {KEY_HELP.get(key, '')}")
    _print_stages()
    print("[aliases] " + ", ".join(f"{a} -> {c}" for a, c in ALIASES.items()))
    return 0


def _print_stages() -> None:
    from ..config_help import KEY_HELP
    from ..train.stages import STAGES

    for name, stage in STAGES.items():
        print(f"[stage: {name}] {stage.summary}")
        if stage.methods_note:
            print(f"  methods: {stage.methods_note}")
        for key, default in _rows(stage.params) if stage.params is not None else ():
            print(f"  {key:30} {str(default):18} {KEY_HELP.get(key, '')}")
