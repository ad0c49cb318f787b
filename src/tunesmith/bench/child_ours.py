"""``python -m tunesmith.bench.child_ours RUN.json``: ``tunesmith train`` with a timing callback.

Runs the real CLI entry point on a config file, so start-up, imports, tokenization and model
loading are all inside the measurement; the only addition is the bench's timing callback, hooked
onto every Trainer as it is built.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run_path: str) -> int:
    run = json.loads(Path(run_path).read_text(encoding="utf-8"))
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peer_scripts"))
    from timing import BenchTiming
    from transformers import Trainer

    timing = BenchTiming(run["result"])
    original = Trainer.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_callback(timing)

    Trainer.__init__ = init
    from ..cli import main as cli_main

    return cli_main(["train", run["config"]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
