"""Third-party messages a user did not cause, filtered at their source, each with why.

Only exact, known messages are dropped (never a whole logger or warning category), so anything
new still shows. Installed once by the CLI before bitsandbytes or peft are imported.
"""

from __future__ import annotations

import logging
import warnings

# bitsandbytes >= 0.49 on an AVX512-BF16 CPU tries to fetch an optional hub kernel through the
# `kernels` package when it is imported (peft and transformers import it whenever it is
# installed) and logs a warning when that package is absent. Its own CPU kernel is then used, so
# nothing is lost, and the line shows on every command even when nothing is quantized.
BNB_KERNELS_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNELS_MESSAGE = "Failed to load CPU gemm_4bit_forward from kernels-community"
# peft (0.18-0.21) reads `model.is_gradient_checkpointing` in get_peft_model, which transformers
# 5.2x deprecated in favour of is_activation_checkpointing: a FutureWarning on every LoRA setup
# that the user cannot act on (peft's behaviour is unchanged).
PEFT_CHECKPOINTING_WARNING = r"`is_gradient_checkpointing` is deprecated"


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def install() -> None:
    """Add the filters (idempotent: each is added only where it is missing)."""
    logger = logging.getLogger(BNB_KERNELS_LOGGER)
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(BNB_KERNELS_MESSAGE))
    # (filterwarnings replaces an identical filter, moving it to the front)
    warnings.filterwarnings("ignore", message=PEFT_CHECKPOINTING_WARNING, category=FutureWarning)
