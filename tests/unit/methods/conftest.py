"""Fixtures for the method tests: a tiny Llama with biases, and a driver that trains a method
on a tiny model through tunesmith's own pieces and keeps the model in memory for checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_bias_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """Like ``tiny_model_dir`` but with attention and MLP biases (for BitFit)."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-bias")
    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    config.attention_bias = config.mlp_bias = True
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(out)
    return out


@dataclass
class Run:
    """What a method test needs after training."""

    cfg: object
    model: object
    trainer: object
    before: dict
    losses: list
    out: Path
    trainable: set = field(default_factory=set)

    def changed(self) -> set:
        after = dict(self.model.named_parameters())
        return {n for n, p in after.items() if not torch.equal(p.detach().cpu(), self.before[n])}

    def unchanged_frozen(self) -> bool:
        after = dict(self.model.named_parameters())
        return all(torch.equal(after[n].detach().cpu(), t)
                   for n, t in self.before.items() if n not in self.trainable)


def train_method(overrides: dict) -> Run:
    """Load, apply the method, train, save (as run_training does); keep the in-memory model."""
    from tunesmith.config import load_config
    from tunesmith.data.load import load_data
    from tunesmith.data.templates import get_template
    from tunesmith.methods import finish_save, method_callbacks, method_params
    from tunesmith.model.load import load_tokenizer, resolve_model_path
    from tunesmith.train.model import describe_trainable, load_for_training

    cfg = load_config(None, overrides)
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = resolve_model_path(cfg.model.model_name_or_path)
    tokenizer = load_tokenizer(cfg.model, path)
    data = load_data(cfg, tokenizer, get_template(cfg.model.template, tokenizer, None))
    method, params = method_params(cfg)
    model = method.apply(load_for_training(cfg, path), params, cfg)
    describe_trainable(model)
    before = {n: p.detach().cpu().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    trainer = build_plain_trainer(cfg, model, tokenizer, data, method_callbacks(cfg, model))
    trainer.train()
    trainer.save_model(str(out))
    finish_save(model, cfg, out)
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return Run(cfg, model, trainer, before, losses, out, trainable)


def build_plain_trainer(cfg, model, tokenizer, data, callbacks):
    """A plain ``transformers.Trainer`` on tunesmith's dataset and collator.

    The methods are under test here, not the training loop (train/ has its own tests), so the
    loop is the library's own with the method's callbacks added.
    """
    from transformers import Trainer, TrainingArguments

    from tunesmith.data.collate import PadCollator
    from tunesmith.train.dataset import ExampleDataset

    t = cfg.train
    args = TrainingArguments(
        output_dir=t.output_dir, max_steps=t.max_steps, learning_rate=t.learning_rate,
        per_device_train_batch_size=t.per_device_train_batch_size, logging_steps=1,
        save_strategy="no", report_to="none", remove_unused_columns=False, seed=t.seed,
        disable_tqdm=True, lr_scheduler_type="constant", use_cpu=not torch.cuda.is_available())
    return Trainer(model=model, args=args, train_dataset=ExampleDataset(data.train),
                   data_collator=PadCollator(tokenizer.pad_token_id), processing_class=tokenizer,
                   callbacks=callbacks)


@pytest.fixture
def method_overrides(tiny_overrides):
    """``tiny_overrides`` without the LoRA key, for any method."""
    base = dict(tiny_overrides)
    base.pop("lora_rank")
    return base


def sample_ids(n: int = 2, length: int = 12, vocab: int = 200) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(5, vocab, (n, length), generator=gen)  # (B, T)


@torch.no_grad()
def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()  # (B, T, V)
