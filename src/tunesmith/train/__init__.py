"""Training: run_training (the story for every stage, train/stages/), TrainingArguments, callbacks and run records."""
