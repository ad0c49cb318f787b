"""W5's second reward: the completion's length in characters / 256, capped at 1.

It differs between nearly any two completions, so every group of a W5 step has a non-zero
advantage and both tools run their loss pass on every row (with ``format_think`` alone the base
model scores 0 on every completion of the 8 steps, every advantage is 0, and tunesmith skips
the loss passes that TRL computes; ``bench/grpo.py`` keeps that case out of the comparison).
TRL's child (``peer_scripts/trl_grpo_child.py``) carries a copy.
"""

from __future__ import annotations


def length(completions, **kwargs) -> list[float]:
    return [min(len(c), 256) / 256 for c in completions]
