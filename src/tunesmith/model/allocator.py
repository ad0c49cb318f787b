"""The CPU memory allocator's policy for large tensors (``cpu_allocator``).

torch allocates CPU tensors with the C library's ``malloc``. glibc serves a block from its heap
unless it is larger than the *mmap threshold*, and that threshold moves: each time a large block
that came from ``mmap`` is freed, the threshold rises to its size (up to 32 MiB). After the first
training layer, every activation of a few MiB therefore comes from the heap, where the tensors a
layer keeps for backward sit between the ones it frees; the freed space is reused only by blocks
that fit in it, so the heap grows layer by layer and is never given back. On the W2 workload
(bundled model, fp32, 8 rows, full checkpointing) one step's resident set reaches 5.5 GiB where
the live tensors never exceed 1.6 GiB; on W4 (one preference pair of 1,124 tokens per pass, no
checkpointing) 3.5 GiB where they peak at 1.6 (docs/performance.md).

``lean`` fixes the threshold at ``LEAN_MMAP_THRESHOLD``: a tensor of 256 KiB or more gets its own
mapping and goes back to the system the moment it is freed, so the resident set follows the live
tensors. The price is that the kernel hands out zeroed pages for every new large tensor. Measured
on W4's five longest pairs (policy, reference and backward; AMD EPYC, fp32), peak resident set and
CPU time: glibc as it is 3,535-3,623 MiB; a 4 MiB threshold 3,493 (most of a short pass's
tensors are 1-3 MiB, under it); 1 MiB 2,800; 256 KiB 2,685 at 1.01x the CPU time. An earlier
4 MiB setting on W2 cost 1.04-1.15x, most with full checkpointing, which frees and reallocates
every layer twice. ``default`` leaves glibc as it is. ``auto`` picks ``lean`` whenever training
runs on the CPU. It applies to the whole process from the moment it is set, and only with glibc
(Linux); elsewhere it says it did nothing.
"""

from __future__ import annotations

CHOICES = ("auto", "lean", "default")  # the config key's values (config_validate.py)
LEAN_MMAP_THRESHOLD = 256 << 10  # bytes; a small model's activations are ~0.5-30 MiB each
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def _glibc():
    """The C library when it is glibc (``mallopt`` and ``gnu_get_libc_version`` exist)."""
    import ctypes
    import platform

    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(None)  # the symbols this process already has: its C library's
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt
    except (OSError, AttributeError):
        return None
    return libc


def resolve(value: str, device: str) -> tuple[str, str]:
    """``cpu_allocator`` -> (``"lean"`` or ``"default"``, why)."""
    if value != "auto":
        return value, "as set"
    if device != "cpu":
        return "default", f"training runs on {device}, not in CPU memory"
    return "lean", ("training on the CPU: tensors of 256 KiB or more go back to the system when "
                    "freed (the resident set follows the live tensors: ~0.75x the peak without "
                    "checkpointing, ~0.4x with it, for ~1.01-1.15x the time)")


def apply(mode: str) -> str | None:
    """Put ``mode`` into effect for this process; None when it did, else why not."""
    if mode != "lean":
        return None
    libc = _glibc()
    if libc is None:
        import platform

        return f"cpu_allocator lean needs glibc (Linux); this is {platform.system()}: left as is"
    if not libc.mallopt(_M_MMAP_THRESHOLD, LEAN_MMAP_THRESHOLD):
        return "cpu_allocator lean: glibc refused the mmap threshold; left as is"
    return None
