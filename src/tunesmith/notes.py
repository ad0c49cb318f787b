"""One-line notes to the user (``note: ...`` on stderr), each printed once per process.

For things a user should know but that are not errors: a LLaMA-Factory key accepted without
effect, a parameter of another method ignored after a method switch. Only rank 0 prints under
torchrun, so a multi-process run says it once.
"""

from __future__ import annotations

import os
import sys

_NOTED: set[str] = set()


def note_once(key: str, text: str) -> None:
    """Print ``note: <text>`` on stderr unless ``key`` was noted before in this process."""
    if key in _NOTED or os.environ.get("RANK", "0") != "0":
        return
    _NOTED.add(key)
    print(f"note: {text}", file=sys.stderr, flush=True)
