"""User-facing errors: one clear line, exit code 2, no traceback (``--debug`` shows it)."""

from __future__ import annotations


class TunesmithError(Exception):
    """A mistake the user can fix (bad config, missing file, bad data).

    The CLI prints ``error: <message>`` and exits with ``exit_code``.
    """

    exit_code = 2


class ConfigError(TunesmithError):
    """An invalid key, value or combination of keys."""


class DataError(TunesmithError):
    """A dataset that cannot be read or has too many bad rows."""


class ModelError(TunesmithError):
    """A model, adapter or checkpoint that cannot be found or does not fit."""


class MissingExtraError(TunesmithError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install 'tunesmith[{extra}]'"
        )


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was saved because of SIGINT/SIGTERM."""

    exit_code = 130


def require(module: str, extra: str, purpose: str):
    """Import an optional module or raise a one-line MissingExtraError.

    Args:
        module: importable module name (e.g. ``"bitsandbytes"``).
        extra: the tunesmith extra that installs it (e.g. ``"qlora"``).
        purpose: what needs it, for the message.
    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra, purpose) from exc
