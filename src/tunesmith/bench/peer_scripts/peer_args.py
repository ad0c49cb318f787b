"""The training settings every peer child takes from the bench spec, written once.

Loaded by the peer children in their own venvs (beside ``timing.py``), so it imports only the
standard library at module level: ``lf_args`` builds LLaMA-Factory's ``run_exp`` arguments,
``trl_args``/``trl_model``/``trl_lora`` TRL's config keywords, model and adapter.
"""


def lf_args(spec, **stage_keys) -> dict:
    """LLaMA-Factory's keys for a LoRA run on tunesmith's tokenized rows (``tokenized_path``
    is set by the caller); ``stage_keys`` (stage, its parameters, checkpointing) win."""
    import torch

    args = {
        "model_name_or_path": spec["model"], "do_train": True,
        "finetuning_type": "lora", "lora_rank": spec["lora_rank"],
        "lora_alpha": spec["lora_alpha"], "lora_dropout": 0.0, "lora_target": "all",
        "dataset": "bench", "dataset_dir": spec["lf_dataset_dir"], "template": "smollm2",
        "default_system": spec["default_system"], "cutoff_len": spec["cutoff_len"],
        "overwrite_cache": True, "output_dir": spec["output_dir"], "overwrite_output_dir": True,
        "logging_steps": 1, "save_strategy": "no", "plot_loss": False, "report_to": "none",
        "per_device_train_batch_size": spec["batch"], "gradient_accumulation_steps": 1,
        "learning_rate": spec["learning_rate"], "num_train_epochs": spec["epochs"],
        "max_steps": spec["max_steps"], "lr_scheduler_type": spec["lr_scheduler_type"],
        "seed": spec["seed"], "disable_shuffling": True, "disable_tqdm": True,
        "bf16": spec["dtype"] == "bf16",  # pure_bf16 is refused on CPU
        "logging_first_step": True,
        # unset: LLaMA-Factory's own default (checkpointing on)
        "disable_gradient_checkpointing": spec.get("gradient_checkpointing") is False,
        **stage_keys,
    }
    if not torch.cuda.is_available():
        args["use_cpu"] = True  # LLaMA-Factory refuses bf16 without a GPU unless told
    return args


def trl_args(spec) -> dict:
    """Keywords every TRL config (SFTConfig, DPOConfig) takes from the spec."""
    return dict(output_dir=spec["output_dir"], per_device_train_batch_size=spec["batch"],
                learning_rate=spec["learning_rate"], num_train_epochs=spec["epochs"],
                max_steps=spec["max_steps"], lr_scheduler_type=spec["lr_scheduler_type"],
                seed=spec["seed"], logging_steps=1, logging_first_step=True,
                save_strategy="no", report_to="none", disable_tqdm=True,
                max_length=spec["cutoff_len"], train_sampling_strategy="sequential",
                bf16=False, use_cpu=True, **trl_checkpointing(spec))


def trl_checkpointing(spec) -> dict:
    """``gradient_checkpointing`` only when the bench sets it: unset, TRL's own default (on)."""
    value = spec.get("gradient_checkpointing")
    return {} if value is None else {"gradient_checkpointing": value}


def trl_model(spec):
    """``(model, tokenizer)`` in the spec's dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[spec["dtype"]]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    return AutoModelForCausalLM.from_pretrained(spec["model"], dtype=dtype), tokenizer


def trl_lora(spec):
    """The spec's LoRA (every linear layer, no dropout) as a peft config."""
    from peft import LoraConfig

    return LoraConfig(r=spec["lora_rank"], lora_alpha=spec["lora_alpha"], lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")
