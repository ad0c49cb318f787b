"""One module per CLI verb: ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations


def load_run_config(args):
    """The RunConfig for a command: the YAML file (optional) + command-line overrides, with the
    stage's own rules checked (an unknown stage is an error before anything loads)."""
    from ..config import load_config
    from ..train.stages import check_stage

    from ..hub import export_token

    cfg = load_config(args.config, args.overrides)
    check_stage(cfg)
    export_token(cfg.model.hf_token)
    return cfg
