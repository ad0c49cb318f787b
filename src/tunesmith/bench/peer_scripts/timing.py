"""A TrainerCallback that records when training began, each step ended and each logged loss.

Loaded by every bench child (tunesmith's and the peers', in their own venvs), so it imports
only transformers and the standard library.
"""

import json
import resource
import time

from transformers import TrainerCallback


class BenchTiming(TrainerCallback):
    def __init__(self, result_path, **extra):
        self.result_path = result_path
        self.record = {"t_begin": None, "t_first_step": None, "t_end": None, "losses": {},
                       "grad_norms": {}, "steps": 0, **extra}

    def on_train_begin(self, args, state, control, **kwargs):
        self.record["t_begin"] = time.time()
        self.record["cpu_begin"] = time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        if self.record["t_first_step"] is None:
            self.record["t_first_step"] = time.time()
        self.record["steps"] = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.record["losses"][str(state.global_step)] = float(logs["loss"])
        if logs and logs.get("grad_norm") is not None:  # DPO's first loss is log 2 for every
            # tool (policy = reference), so equal work shows in the first gradient norm
            self.record["grad_norms"][str(state.global_step)] = float(logs["grad_norm"])

    def on_train_end(self, args, state, control, **kwargs):
        self.record["t_end"] = time.time()
        self.record["tokens_seen"] = state.num_input_tokens_seen  # online RL: prompt + completion
        self.record["cpu_end"] = time.process_time()
        self.record["child_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        try:
            import torch

            if torch.cuda.is_available():
                self.record["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        except ImportError:
            pass
        with open(self.result_path, "w", encoding="utf-8") as fh:
            json.dump(self.record, fh)
