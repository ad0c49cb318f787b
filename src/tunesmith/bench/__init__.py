"""Benchmarks: training against peers (train), speed ablation (speed), serving (serve), methods."""
