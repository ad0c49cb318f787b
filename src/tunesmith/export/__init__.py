"""Export: merge an adapter into its base and save shards (or GGUF)."""
