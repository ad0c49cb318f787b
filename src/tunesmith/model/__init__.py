"""Model loading: the bundled SmolLM2, local HF dirs and GGUF files, dtype and quantization."""
