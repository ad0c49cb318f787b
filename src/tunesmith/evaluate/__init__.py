"""Evaluation: text metrics, batched predict, loss and perplexity."""
