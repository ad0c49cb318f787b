"""RewardTrainer: the pairwise reward-model loss, with the value head saved and resumed."""

from __future__ import annotations

from .pref_losses import reward_loss
from .pref_trainer import PreferenceTrainer
from .reward_model import load_value_head, reward_scores, save_value_head


class RewardObjective:
    """Bradley-Terry loss on the scalar rewards of chosen and rejected answers."""

    needs_ref = False

    def __call__(self, trainer, model, inputs):
        return reward_loss(reward_scores(model, inputs))


class RewardTrainer(PreferenceTrainer):
    """PreferenceTrainer for ``stage: rm``: saves ``value_head.safetensors`` with every
    checkpoint and the final model, and loads it back on resume."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("objective", RewardObjective())
        super().__init__(*args, **kwargs)

    def _save(self, output_dir=None, state_dict=None):
        super()._save(output_dir, state_dict)
        save_value_head(self.model, output_dir or self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_value_head(model or self.model, resume_from_checkpoint)
