"""Shared fixtures: tiny models built offline once per session; the bundled SmolLM2 for
integration tests. No test touches the network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    """The converted bundled SmolLM2-135M (converted once into the user's cache)."""
    from tunesmith.model.bundled import ensure_bundled

    return ensure_bundled("smollm2-135m", quiet=True)


def _tiny_llama(tokenizer, seed: int = 0, layers: int = 2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bundled_dir) -> Path:
    """A 2-layer Llama (hidden 32) with SmolLM2's ChatML tokenizer and chat template."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-chatml")
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_dir))
    _tiny_llama(tokenizer).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama3_dir(tmp_path_factory, bundled_dir) -> Path:
    """A tiny Llama with a Llama-3-style tokenizer (header/eot special tokens, own template)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-llama3")
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": [
        "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tokenizer.bos_token = "<|begin_of_text|>"
    tokenizer.eos_token = "<|eot_id|>"
    tokenizer.pad_token = None
    tokenizer.chat_template = LLAMA3_TEMPLATE
    _tiny_llama(tokenizer).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def random_lora(base_dir: Path, out: Path, *, r: int, alpha: int, targets, std: float,
                seed: int) -> Path:
    """Save a LoRA adapter for ``base_dir`` whose B matrices are random, not zero, so it really
    changes the answers (training one is tested elsewhere; here it would take minutes)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                            task_type="CAUSAL_LM"))
    torch.manual_seed(seed)
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, std)
    peft.save_pretrained(out)
    return out


def write_rows(path: Path, rows: list, jsonl: bool | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if jsonl if jsonl is not None else path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


CHAT_ROWS = [
    {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                  {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}
    for i in range(24)
]


@pytest.fixture
def chat_data(tmp_path) -> Path:
    return write_rows(tmp_path / "chat.jsonl", CHAT_ROWS)


@pytest.fixture
def tiny_overrides(tiny_model_dir, chat_data, tmp_path):
    """Overrides for a fast, deterministic tiny-model run."""
    return {"model_name_or_path": str(tiny_model_dir), "dataset": str(chat_data),
            "output_dir": str(tmp_path / "run"), "max_steps": 6, "learning_rate": 1e-2,
            "per_device_train_batch_size": 4, "logging_steps": 1, "save_strategy": "no",
            "dtype": "fp32", "lora_rank": 4, "cutoff_len": 128}


@pytest.fixture(autouse=True)
def _restore_logging():
    """Code under test may call logging.basicConfig while pytest captures stderr; a root handler
    left pointing at a closed capture stream would break every later test's logging."""
    import logging

    handlers = logging.root.handlers[:]
    level = logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


@pytest.fixture
def stand_in_hub():
    """A Hugging Face Hub stand-in on 127.0.0.1 (tests/hubserver.py); empty until a test adds repos."""
    from .hubserver import StandInHub

    hub = StandInHub()
    yield hub
    hub.close()


@pytest.fixture
def hub_env(stand_in_hub, tmp_path, monkeypatch):
    """HF_ENDPOINT at the stand-in hub, an empty HF cache under tmp_path, online (this process's
    HF clients included); subprocesses inherit the environment. Returns the hub."""
    from .hubserver import point_clients_at

    point_clients_at(monkeypatch, stand_in_hub.url, tmp_path / "hf")
    return stand_in_hub
