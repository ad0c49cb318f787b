"""tunesmith: fine-tune open chat models on your own data."""

__version__ = "0.1.0"
