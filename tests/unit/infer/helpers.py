"""A tiny model taught two fixed answers (so it provably ends them with <|im_end|>)."""

from __future__ import annotations

import functools

import torch

TAUGHT = [
    ([{"role": "user", "content": "Hi"}], "Hello there."),
    ([{"role": "user", "content": "Who are you?"}], "I am Nova, a tiny model."),
]


STEPS = 60


@functools.lru_cache(maxsize=None)
def taught_parts(model_dir: str, eos_elsewhere: bool = True):
    """(model, tokenizer, template) after overfitting the tiny model on TAUGHT (~5 s).

    With ``eos_elsewhere`` the tokenizer's EOS is moved to ``<|endoftext|>``, so stopping at
    ``<|im_end|>`` can only come from the template's end-of-turn detection.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.data.collate import PadCollator
    from tunesmith.data.conversation import Conversation
    from tunesmith.data.templates import get_template
    from tunesmith.data.tokenize import encode_conversation

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    template = get_template("auto", tokenizer)
    examples = [encode_conversation(Conversation(m + [{"role": "assistant", "content": a}]),
                                    tokenizer, template, train_on="all_assistant", cutoff_len=256)[0]
                for m, a in TAUGHT]
    batch = PadCollator(tokenizer.pad_token_id)([vars(e) for e in examples])
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(STEPS):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    if eos_elsewhere:
        tokenizer.eos_token = "<|endoftext|>"
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer, template


def taught_engine(model_dir):
    from tunesmith.infer.hf import HFEngine

    return HFEngine(*taught_parts(str(model_dir)))
