"""`tunesmith train examples/identity.yaml` prints nothing the user did not cause.

No third-party warning (bitsandbytes' missing `kernels` package, DeepSpeed's "no GPU found",
transformers' FutureWarning about `is_gradient_checkpointing` reached through peft), no
per-tensor loading bar: only
tunesmith's own lines. Filters live in compat/quiet.py and model/load.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ..conftest import REPO

NOISE = ("warning", "deprecated", "failed", "traceback", "kernels", "loading weights")


@pytest.mark.slow
def test_identity_example_first_screen_is_clean(tmp_path, bundled_dir):
    out = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "train", "examples/identity.yaml", "max_steps=1",
         "max_samples=4", "cutoff_len=96", "per_device_train_batch_size=2",
         f"output_dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    noisy = [line for line in (out.stderr + out.stdout).splitlines()
             if any(word in line.lower() for word in NOISE)]
    assert noisy == []
    assert "trainable params:" in out.stderr and "done: train_loss=" in out.stdout


def test_quiet_filters_drop_only_the_known_messages(caplog):
    import logging
    import warnings

    from tunesmith.compat import quiet

    quiet.install()
    for name, prefix in quiet.LOGGED:
        caplog.clear()
        logger = logging.getLogger(name)
        with caplog.at_level(logging.WARNING, logger=name):
            logger.warning(prefix + ": details")
            logger.warning("another message")
        assert [r.getMessage() for r in caplog.records] == ["another message"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet.install()  # in front of "always"
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.",
                      FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]
