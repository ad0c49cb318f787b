"""Training: run_sft (the story), TrainingArguments, callbacks and run records."""
