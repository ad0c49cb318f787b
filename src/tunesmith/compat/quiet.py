"""Third-party messages a user did not cause, filtered at their source, each with why.

Only exact, known messages are dropped (never a whole logger or warning category), so anything
new still shows. Installed once by the CLI before bitsandbytes, deepspeed or peft are imported.
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
# deepspeed (0.16-0.19), when installed, is imported by accelerate inside every Trainer (to
# recognise its engine) and then warns that it found no GPU: on a CPU machine that is expected,
# and the line appears in runs that never use DeepSpeed.
DEEPSPEED_LOGGER = "DeepSpeed"
DEEPSPEED_CPU_MESSAGE = "Setting accelerator to CPU"
# peft (0.18-0.21) reads `model.is_gradient_checkpointing` in get_peft_model, which transformers
# 5.2x deprecated in favour of is_activation_checkpointing: a FutureWarning on every LoRA setup
# that the user cannot act on (peft's behaviour is unchanged).
PEFT_CHECKPOINTING_WARNING = r"`is_gradient_checkpointing` is deprecated"

LOGGED = ((BNB_KERNELS_LOGGER, BNB_KERNELS_MESSAGE), (DEEPSPEED_LOGGER, DEEPSPEED_CPU_MESSAGE))


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def install() -> None:
    """Add the filters (idempotent: each is added only where it is missing)."""
    for name, prefix in LOGGED:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropMessage(prefix))
    # (filterwarnings replaces an identical filter, moving it to the front)
    warnings.filterwarnings("ignore", message=PEFT_CHECKPOINTING_WARNING, category=FutureWarning)
