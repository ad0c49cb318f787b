"""Inference: one Engine interface behind chat, predict, serve and the web UI."""
