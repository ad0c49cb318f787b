"""One module per CLI verb: ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations


def load_run_config(args):
    """The RunConfig for a command: the YAML file (optional) + command-line overrides."""
    from ..config import load_config

    return load_config(args.config, args.overrides)
