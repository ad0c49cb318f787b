"""Fault injection: environment variables that make a run fail on purpose at a chosen point.

The fault tests (``tests/faults``, ``tests/unit/train/test_engine.py``) drive real processes
through their recovery paths with these; unset (every real run), each hook does nothing.

| variable | effect | where |
|---|---|---|
| ``TUNESMITH_TEST_NAN_AT_STEP=k`` | the loss of optimizer step k becomes NaN | train/trainer.py |
| ``TUNESMITH_TEST_DIE_AT=rank:k`` | that rank SIGKILLs itself as step k starts | train/trainer.py |
| ``TUNESMITH_TEST_SLOW_SAVE=[step:]s`` | a checkpoint write sleeps s seconds after its files, before its marker and rename (every save, or only step's) | train/trainer.py |
| ``TUNESMITH_TEST_FAIL_GENERATION=k`` | generation raises after k tokens, for prompts containing ``TUNESMITH_FAIL`` only | serve/app.py (the scheduler raises) |

A hook that fires prints a ``TUNESMITH_TEST: ...`` line on stderr where a test waits for it.
"""

from __future__ import annotations

import os
import sys

FAIL_MARKER = "TUNESMITH_FAIL"  # only prompts containing it fail (TUNESMITH_TEST_FAIL_GENERATION)


def announce(what: str) -> None:
    """The ``TUNESMITH_TEST: <what>`` line a fault test waits for."""
    print(f"TUNESMITH_TEST: {what}", file=sys.stderr, flush=True)


def nan_at_step() -> int:
    """The optimizer step whose loss becomes NaN (0: none)."""
    return int(os.environ.get("TUNESMITH_TEST_NAN_AT_STEP", "0") or 0)


def die_if_due(step: int) -> None:
    """SIGKILL this process (no handler runs) when ``TUNESMITH_TEST_DIE_AT`` names its rank and
    ``step``."""
    rank, _, at = os.environ.get("TUNESMITH_TEST_DIE_AT", "").partition(":")
    if at and int(at) == step and int(os.environ.get("RANK", "0")) == int(rank):
        import signal

        announce(f"rank {rank} dies at step {step}")
        os.kill(os.getpid(), signal.SIGKILL)


def slow_save_seconds(step: int) -> float:
    """Seconds the checkpoint of ``step`` sleeps before its marker (0.0: none)."""
    value = os.environ.get("TUNESMITH_TEST_SLOW_SAVE", "")
    if not value:
        return 0.0
    at, _, seconds = value.rpartition(":")
    return float(seconds) if not at or int(at) == step else 0.0


def fail_generation_after(prompt_text: str) -> int | None:
    """Tokens after which generating for this prompt raises, or None (the normal case)."""
    value = os.environ.get("TUNESMITH_TEST_FAIL_GENERATION")
    if not value or FAIL_MARKER not in prompt_text:
        return None
    return int(value)
