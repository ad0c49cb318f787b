"""The Trainer callback AdaLoRA needs (kept apart so that config checks do not import the
Trainer stack)."""

from __future__ import annotations

from transformers import TrainerCallback

from .adalora import AdaLoraParams, check_schedule


class AdaLoraBudget(TrainerCallback):
    """Calls peft's ``update_and_allocate`` after each optimizer step (grads still present)."""

    def __init__(self, model, params: AdaLoraParams):
        self.model, self.params = model, params

    def on_train_begin(self, args, state, control, **kwargs):
        if self.params.adalora_total_step is None:  # now the run's length is known
            check_schedule(self.params, state.max_steps)
            self.model.peft_config[self.model.active_adapter].total_step = state.max_steps

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.model.base_model.update_and_allocate(state.global_step)
