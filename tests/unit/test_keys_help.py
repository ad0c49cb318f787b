"""`--help` explains every option: each configuration key has a help line, shown by `keys`."""

import subprocess
import sys

from tunesmith.config import ALIASES, valid_keys
from tunesmith.config_help import KEY_HELP


def test_every_key_has_help():
    missing = [k for k in valid_keys() if k not in KEY_HELP and k not in ALIASES]
    assert missing == []


def test_keys_command_lists_sections_and_methods():
    out = subprocess.run([sys.executable, "-m", "tunesmith.cli", "keys"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0
    for needle in ("[model]", "[train]", "learning_rate", "[method: lora]", "lora_rank"):
        assert needle in out.stdout
