"""``tunesmith data preview|validate|stats CONFIG``: the dataset as the model will see it."""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    # The action is a declared positional so argparse consumes it; the config file and key=value
    # overrides that follow are left for cli.py.
    parser.usage = ("tunesmith data {preview,validate,stats} [CONFIG.yaml] [key=value ...] "
                    "[-n N] [--strict] [--json]")
    parser.add_argument("action", choices=sorted(ACTIONS), help="what to do with the dataset")
    parser.add_argument("-n", type=int, default=3, help="preview: how many examples to show")
    parser.add_argument("--strict", action="store_true",
                        help="validate: exit 2 on any error or warning")
    parser.add_argument("--json", action="store_true", help="stats: print JSON")


def _setup(args):
    """Config, tokenizer, the stage's template, and its data kind (pairs for dpo/rm, ...)."""
    from . import load_run_config
    from ..train.stages import get_stage, tokenizer_and_template

    cfg = load_run_config(args)
    tokenizer, template = tokenizer_and_template(cfg, quiet=True)
    if not cfg.data.dataset:
        from ..errors import DataError

        raise DataError("no dataset: set dataset: (a file path or a name in dataset_info.json)")
    return cfg, tokenizer, template, get_stage(cfg.method.stage).data_kind


def _preview(args) -> int:
    from ..data.preview import preview

    cfg, tokenizer, template, kind = _setup(args)
    text, report = preview(cfg, tokenizer, template, n=args.n, kind=kind)
    print(text)
    return 0


def _validate(args) -> int:
    from ..data.stats import validate

    cfg, tokenizer, template, kind = _setup(args)
    lines, code = validate(cfg, tokenizer, template, strict=args.strict, kind=kind)
    print("\n".join(lines))
    return code


def _stats(args) -> int:
    from ..data.stats import format_stats, stats

    cfg, tokenizer, template, kind = _setup(args)
    st = stats(cfg, tokenizer, template, kind=kind)
    print(json.dumps(st, indent=2, ensure_ascii=False) if args.json else format_stats(st))
    return 0


ACTIONS = {"preview": _preview, "validate": _validate, "stats": _stats}


def run(args) -> int:
    return ACTIONS[args.action](args)
