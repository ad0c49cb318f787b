"""What each tool runs as in ``bench train``: as it comes, and at its best.

- ``defaults``: every tool with nothing set beyond the workload's shared keys. tunesmith then
  packs (``packing: auto``) and decides checkpointing from its estimate
  (``gradient_checkpointing: auto``); LLaMA-Factory and TRL pad every batch to its longest row
  and checkpoint (their defaults).
- ``best``: the same settings for every tool, each with its own padding-free mode and
  checkpointing on: tunesmith's packing, LLaMA-Factory's ``neat_packing`` (rows packed to
  ``cutoff_len`` by its greedy knapsack, block-diagonal attention), TRL's ``padding_free`` (a
  batch flattened into one sequence with position ids).

tunesmith gets no other key in either mode: what the bench measures is what a user gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    name: str  # the row in reports
    tool: str  # tunesmith | llamafactory | trl
    mode: str  # defaults | best
    keys: dict = field(default_factory=dict)  # settings on top of the shared spec


VARIANTS = {v.name: v for v in (
    Variant("tunesmith", "tunesmith", "defaults"),
    Variant("llamafactory", "llamafactory", "defaults"),
    Variant("trl", "trl", "defaults"),
    Variant("tunesmith-best", "tunesmith", "best", {"gradient_checkpointing": True}),
    Variant("llamafactory-neat", "llamafactory", "best",
            {"gradient_checkpointing": True, "neat_packing": True}),
    Variant("trl-padding-free", "trl", "best",
            {"gradient_checkpointing": True, "padding_free": True}),
)}
MODES = ("defaults", "best")


def variants_for(peers: list[str], modes: list[str]) -> list[Variant]:
    """tunesmith plus the peers, in each mode asked for (interleaved per repeat by the caller)."""
    from ..errors import ConfigError

    for mode in modes:
        if mode not in MODES:
            raise ConfigError(f"--modes: '{mode}' is not one of {', '.join(MODES)}")
    tools = ["tunesmith", *peers]
    return [v for v in VARIANTS.values() if v.mode in modes and v.tool in tools]


PADDING_FREE = ("neat_packing", "padding_free")  # the peers' SFT-only padding-free switches


def settings(variant: Variant, spec: dict) -> dict:
    """The variant's keys with the bench's ``--gradient-checkpointing`` (when given) winning.
    Preference workloads (W4) have no padding-free mode in the peers (LLaMA-Factory refuses
    ``neat_packing`` outside SFT): their ``best`` is checkpointing on for all."""
    keys = dict(variant.keys)
    if spec.get("stage", "sft") != "sft":
        keys = {k: v for k, v in keys.items() if k not in PADDING_FREE}
    if spec.get("gradient_checkpointing") is not None:
        keys["gradient_checkpointing"] = spec["gradient_checkpointing"]
    return keys


def baseline_of(name: str) -> str:
    """The tunesmith row a variant is compared with (the one in its own mode)."""
    mode = VARIANTS[name].mode if name in VARIANTS else "defaults"
    return next(v.name for v in VARIANTS.values() if v.tool == "tunesmith" and v.mode == mode)
