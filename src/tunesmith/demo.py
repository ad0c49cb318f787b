"""``make demo``: teach the bundled model a new name and show "Who are you?" before and after."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import RunConfig


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "identity.yaml"
QUESTIONS = ("Who are you?", "你是谁？")


def ask(cfg: RunConfig, adapter: str, label: str) -> None:
    from .infer.engine import GenParams
    from .infer.load import load_engine

    engine = load_engine(cfg, adapter=adapter)
    params = GenParams(max_new_tokens=48)
    for q in QUESTIONS:
        print(f"  [{label}] {q}  ->  {engine.generate([{'role': 'user', 'content': q}], params).text}",
              flush=True)


def main() -> int:
    from .config import load_config
    from .train.run import run_training

    start = time.time()
    out = "saves/demo-identity"
    # the demo's shorter run (40 steps) learns the name; the example's own settings (60 steps)
    # also reach the tutorial's predict scores (docs/studies/identity/)
    cfg = load_config(str(EXAMPLE), [f"output_dir={out}", "learning_rate=1e-3", "num_train_epochs=4"])
    print("== 1/3 the bundled model before fine-tuning ==", flush=True)
    ask(cfg, "", "before")
    print("\n== 2/3 fine-tuning on examples/data/identity.json (name: Nova) ==", flush=True)
    run_training(cfg)
    print("\n== 3/3 the same questions after fine-tuning ==", flush=True)
    ask(cfg, out, "after")
    print(f"\ndemo finished in {time.time() - start:.0f} s; adapter in {out}/", flush=True)
    print(f"try: .venv/bin/tunesmith chat {EXAMPLE.relative_to(Path.cwd()) if EXAMPLE.is_relative_to(Path.cwd()) else EXAMPLE} "
          f"adapter_name_or_path={out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
