"""The command line: ``tunesmith <verb> [config.yaml] [key=value | --key value ...]``.

Parsing only: each verb lives in ``tunesmith.commands.<verb>`` with ``add_arguments(parser)`` and
``run(args) -> int``, imported lazily so ``--help`` and small verbs start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = {
    "train": "fine-tune a model (LoRA, QLoRA, full, freeze, PEFT methods); also --do_predict",
    "chat": "chat with a base model, base + adapter, or compare base and tuned side by side",
    "predict": "generate on a dataset and score BLEU-4 / ROUGE (generated_predictions.jsonl)",
    "eval": "loss and perplexity of a model (+ adapter) on a dataset",
    "export": "merge an adapter into its base and save it (safetensors shards or one GGUF file)",
    "serve": "serve an OpenAI-compatible API (chat/completions, completions, models)",
    "webui": "open the web UI: train, watch, chat, evaluate, export",
    "data": "preview, validate or summarise a dataset as the model will see it",
    "sweep": "run a hyperparameter grid and compare runs (loss, memory, speed)",
    "estimate": "estimate memory and time before training",
    "bench": "benchmark training or serving (against LLaMA-Factory and TRL)",
    "models": "list the bundled and cached models (bundled, Hugging Face, ModelScope, tunesmith)",
    "download": "fetch a hub model (or --dataset) into the cache ahead of time",
    "env": "versions, hardware and the chosen dtype (for bug reports)",
    "doctor": "check versions, CPU/dtype, model cache and disk space",
}

EPILOG = ("Configuration keys may be set in the YAML file or on the command line as key=value "
          "or --key value (the command line wins). `tunesmith keys` lists every key.")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        print(f"error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tunesmith", description="Fine-tune open chat models on your own data.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>", parser_class=_Parser)
    for verb, summary in {**COMMANDS, "keys": "list every configuration key with its default"}.items():
        p = sub.add_parser(verb, help=summary, description=summary, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
        module = _module(verb)
        if module is not None and hasattr(module, "add_arguments"):
            module.add_arguments(p)
    return parser


def _module(verb: str):
    try:
        return importlib.import_module(f"tunesmith.commands.{verb}")
    except ModuleNotFoundError as exc:
        if exc.name == f"tunesmith.commands.{verb}":
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from .compat import quiet

    quiet.install()  # before anything imports bitsandbytes or peft
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.version:
        from . import __version__

        print(f"tunesmith {__version__}")
        return 0
    if not args.verb:
        parser.print_help()
        return 0
    from .config_parse import split_config_and_overrides

    args.config, args.overrides = split_config_and_overrides(extras)
    debug = getattr(args, "debug", False) or os.environ.get("TUNESMITH_DEBUG") == "1"
    return run_verb(args, debug)


def run_verb(args, debug: bool) -> int:
    from .errors import TunesmithError

    module = _module(args.verb)
    if module is None:
        print(f"error: '{args.verb}' is not available in this version", file=sys.stderr)
        return 2
    try:
        return int(module.run(args) or 0)
    except TunesmithError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0


def leave(code: int) -> None:
    """Exit with ``code``; a failed rank of a distributed job exits at once.

    A rank that stops on an error skips interpreter teardown: its process group's destructor
    can abort when the peer ranks have already gone, turning a clean exit code 2 into SIGABRT.
    """
    from .train.distributed import is_launched

    if code and is_launched():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    leave(main())
