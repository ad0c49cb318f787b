"""SIGINT/SIGTERM during training: finish the step, save a checkpoint, exit with a known code.

Exit codes (documented in ``tunesmith train --help``): 130 after SIGINT, 143 after SIGTERM (the
shell convention 128 + signal number). A second signal stops at once (default handler).
"""

from __future__ import annotations

import contextlib
import signal

from transformers import TrainerCallback

from ..errors import TrainingInterrupted

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequest:
    """The signal received (if any), set from the handler and read at each step end."""

    def __init__(self):
        self.signum: int | None = None

    def handler(self, signum, frame):
        if self.signum is not None:  # second signal: the user really wants out
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.signum = signum


def _agree(local: int | None) -> int | None:
    """In DDP every rank must stop at the same step: take the max signal seen on any rank."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return local
    flag = torch.tensor([local or 0], dtype=torch.long)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) or None


class StopOnSignal(TrainerCallback):
    """After a signal: the current optimizer step completes, then save and stop."""

    def __init__(self, request: StopRequest):
        self.request = request

    def on_step_end(self, args, state, control, **kwargs):
        signum = _agree(self.request.signum)
        if signum:
            self.request.signum = signum
            control.should_save = True  # even with save_strategy: no — this is the resume point
            control.should_training_stop = True
        return control


@contextlib.contextmanager
def trap_signals(request: StopRequest):
    """Install the handlers for the duration of training; restore the previous ones after.

    SIGXFSZ is ignored so a file-size limit surfaces as an OSError (a clear "no space" error)
    instead of killing the process mid-write.
    """
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    xfsz = signal.getsignal(signal.SIGXFSZ) if hasattr(signal, "SIGXFSZ") else None
    try:
        for s in previous:
            signal.signal(s, request.handler)
        if xfsz is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if xfsz is not None:
            signal.signal(signal.SIGXFSZ, xfsz)


def interrupted(request: StopRequest, checkpoint, output_dir) -> TrainingInterrupted:
    """The exception run_training raises after the stop checkpoint was written."""
    name = signal.Signals(request.signum).name
    err = TrainingInterrupted(
        f"{name} received: stopped after step; checkpoint saved to {checkpoint}. Resume with: "
        f"tunesmith train <config> resume_from_checkpoint=auto output_dir={output_dir}")
    err.exit_code = EXIT_CODES.get(request.signum, 130)
    return err
