"""Data: raw rows -> Conversation (formats) -> ids and labels (templates, tokenize) -> batches."""
