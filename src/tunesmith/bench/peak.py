"""The machine's measured matmul peak (fp32 and bf16 GEMM), so achieved FLOP/s has a yardstick."""

from __future__ import annotations

import time


def gemm_flops(dtype_name: str, n: int = 1024, seconds: float = 1.0) -> float:
    """Best FLOP/s of an n x n x n matmul in ``dtype_name`` over about ``seconds``."""
    import torch

    from ..hardware import torch_dtype

    dtype = torch_dtype(dtype_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b  # first call picks kernels
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start))
    return best


def measure_peaks(seconds: float = 1.0) -> dict[str, float]:
    """``{"fp32": FLOP/s, "bf16": FLOP/s}`` measured now on this machine."""
    return {name: gemm_flops(name, seconds=seconds) for name in ("fp32", "bf16")}


def model_flops_per_token(config) -> float:
    """Useful training FLOPs per real token: forward + backward through every matmul (LoRA's
    weight gradients are negligible), attention scores excluded; the same yardstick for every
    tool, so FLOP/s ratios equal tokens/s ratios."""
    text = getattr(config, "text_config", None) or config
    h, i, layers = text.hidden_size, text.intermediate_size, text.num_hidden_layers
    kv = text.num_key_value_heads * (h // text.num_attention_heads)
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i  # q, o, k, v, gate, up, down
    matmul_params = layers * per_layer + h * text.vocab_size  # + the LM head
    return 4.0 * matmul_params  # 2 (forward) + 2 (backward to the inputs)
