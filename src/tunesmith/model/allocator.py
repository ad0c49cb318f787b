"""The CPU memory allocator's policy for large tensors (``cpu_allocator``).

torch allocates CPU tensors with the C library's ``malloc``. glibc serves a block from its heap
unless it is larger than the *mmap threshold*, and that threshold moves: each time a large block
that came from ``mmap`` is freed, the threshold rises to its size (up to 32 MiB). After the first
training layer, every activation of a few MiB therefore comes from the heap, where the tensors a
checkpointed layer keeps (its input) sit between the ones it frees; the freed space is reused
only by blocks that fit in it, so the heap grows layer by layer and is never given back. On the
W2 workload (bundled model, fp32, 8 rows, full checkpointing) one step's resident set reaches
5.5 GiB where the live tensors never exceed 1.6 GiB (docs/performance.md).

``lean`` fixes the threshold at ``LEAN_MMAP_THRESHOLD``: a tensor of 4 MiB or more gets its own
mapping and goes back to the system the moment it is freed, so the resident set follows the
live tensors. The price is that the kernel hands out zeroed pages for every new large tensor
(measured on that step: full checkpointing 2.1 GiB instead of 5.5 at 1.15x the time; selective
4.5 instead of 8.0 at 1.12x; none 8.1 instead of 12.2 at 1.04x). ``default`` leaves glibc as it
is. ``auto`` picks ``lean`` where memory is what the run optimizes for: training on the CPU with
gradient checkpointing on. It applies to the whole process from the moment it is set, and only
with glibc (Linux); elsewhere it says it did nothing.
"""

from __future__ import annotations

CHOICES = ("auto", "lean", "default")  # the config key's values (config_validate.py)
LEAN_MMAP_THRESHOLD = 4 << 20  # bytes; the activations of one small-model layer are ~3-30 MiB
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


def resolve(value: str, device: str, checkpointing) -> tuple[str, str]:
    """``cpu_allocator`` -> (``"lean"`` or ``"default"``, why)."""
    if value != "auto":
        return value, "as set"
    if device != "cpu":
        return "default", f"training runs on {device}, not in CPU memory"
    if not checkpointing:
        return "default", "gradient checkpointing is off (speed first)"
    return "lean", ("gradient checkpointing is on (memory first): tensors of 4 MiB or more go "
                    "back to the system when freed (~0.4-0.6x the resident memory, ~1.05-1.15x "
                    "the time)")


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
