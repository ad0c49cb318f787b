"""Compatibility with other tools' config shapes (LLaMA-Factory)."""
