"""Stand-in for torchaudio (PyPI has only CUDA builds, which cannot load with the CPU torch).

LLaMA-Factory imports torchaudio at module level for audio inputs; text SFT never calls it.
"""

__version__ = "0.0.0+tunesmith-stub"


def __getattr__(name):
    raise ImportError(f"torchaudio.{name} is unavailable: this is tunesmith's stand-in module")
