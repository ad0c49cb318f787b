"""LLaMA-Factory keys that tunesmith accepts without effect, and the ones it refuses.

Every key of LLaMA-Factory 0.9.5's model, data, finetuning, generating and training arguments
(with the HF ``Seq2SeqTrainingArguments`` it accepts) falls in exactly one of three outcomes:

- it works with the same meaning: one of our keys, an alias, a rewrite in ``llamafactory.py``,
  or a ``TrainingArguments`` field passed through to the Trainer (``trainer_args``);
- :data:`NO_EFFECT`: accepted, and one note per run says why it changes nothing here;
- :data:`REFUSED`: an error naming what to use instead. A refused key set to a value that
  changes nothing (LLaMA-Factory's default, ``harmless``) is accepted with a note instead, so a
  file that spells out every default still runs.

``tests/data/llamafactory_0.9.5_keys.json`` holds the full key list; a test walks it and checks
each key against these tables and the config. A key here that later becomes a real config key
wins at run time, and that test names the stale entry.
"""

from __future__ import annotations

from dataclasses import dataclass

_TEXT_ONLY = "tunesmith trains text-only models, so image/video/audio settings do not apply"
_KTRANSFORMERS = "KTransformers MoE offloading is not supported; use qlora for a large model"
_SGLANG = "infer_backend sglang is not supported; use infer_backend hf or vllm"
_PROFILER = "the torch profiler is not wired in; `tunesmith bench train` reports step timings"
_GPTQ = ("GPTQ export is not supported; export a merged model and quantize it with "
         "export_format: gguf (llama.cpp) instead")
_HUB_PUSH = "uploading is not part of training; push output_dir afterwards with `hf upload`"
_RAY = "Ray is not supported; use nproc_per_node (torchrun) for several processes"
_APOLLO = "APOLLO is not supported; use optim: galore_adamw (use_galore: true) or lora"
_BADAM = "BAdam is not supported; use finetuning_type: freeze (train some layers) or lora"
_LOSSES = "only the standard cross-entropy loss is available; remove this key"
_TRACKIO = "Trackio is not a supported tracker; use report_to: tensorboard, wandb or swanlab"


NO_EFFECT: dict[str, str] = {
    # model
    "use_fast_tokenizer": "the tokenizer loads as transformers' AutoTokenizer does (fast when the model has one)",
    "low_cpu_mem_usage": "models always load with low memory use (the transformers 5 default)",
    "use_unsloth": "tunesmith's own fast path (fused chunked loss, CPU attention kernels) is always on",
    "use_unsloth_gc": "activation checkpointing is torch's non-reentrant one (gradient_checkpointing)",
    "enable_liger_kernel": "the fused chunked loss (fast_loss) already avoids materialising the logits",
    "use_liger_kernel": "the fused chunked loss (fast_loss) already avoids materialising the logits",
    "liger_kernel_config": "Liger kernels are not used; the fused chunked loss (fast_loss) is",
    "use_v1_kernels": "LLaMA-Factory's kernels do not apply; tunesmith's own fast path is always on",
    "use_reentrant_gc": "activation checkpointing is always non-reentrant (works with frozen inputs)",
    "upcast_layernorm": "norm layers run under autocast, which computes them in fp32 already",
    "upcast_lmhead_output": "the loss is computed from fp32 logits already",
    "offload_folder": "models load fully into memory; disk offload is not used",
    "use_kv_cache": "generation always uses the KV cache and training never does",
    "use_cache": "generation always uses the KV cache and training never does",
    "print_param_status": "the trainable parameter count is always printed",
    "quantization_device_map": "a quantized model loads on the training device",
    "image_max_pixels": _TEXT_ONLY, "image_min_pixels": _TEXT_ONLY,
    "image_do_pan_and_scan": _TEXT_ONLY, "crop_to_patches": _TEXT_ONLY,
    "video_max_pixels": _TEXT_ONLY, "video_min_pixels": _TEXT_ONLY, "video_fps": _TEXT_ONLY,
    "video_maxlen": _TEXT_ONLY, "use_audio_in_video": _TEXT_ONLY, "audio_sampling_rate": _TEXT_ONLY,
    "media_dir": _TEXT_ONLY, "freeze_vision_tower": _TEXT_ONLY,
    "freeze_multi_modal_projector": _TEXT_ONLY, "freeze_language_model": _TEXT_ONLY,
    "vllm_maxlen": "the vLLM engine takes its context length from the model",
    "vllm_gpu_util": "the vLLM engine uses vLLM's default GPU memory share",
    "vllm_enforce_eager": "the vLLM engine uses vLLM's default (CUDA graphs)",
    "vllm_max_lora_rank": "the vLLM engine reads the LoRA rank from the adapter",
    "vllm_config": "the vLLM engine is built from the model and adapter alone",
    # data
    "preprocessing_batch_size": "tokenization batches are sized automatically",
    "ignore_pad_token_for_loss": "padding is never labelled",
    "data_shared_file_system": "the main process tokenizes; other ranks read the same cache",
    # finetuning
    "pissa_convert": "PiSSA/OLoRA adapters are always converted to plain LoRA when saved",
    "include_effective_tokens_per_second": "trained tokens per second are always logged",
    # generating
    "max_length": "max_new_tokens bounds generation (and cutoff_len the prompt)",
    "length_penalty": "it applies to beam search only, which is not used",
    "skip_special_tokens": "special tokens are always removed from replies",
    # training (LLaMA-Factory's own)
    "profiler_output_dir": _PROFILER, "profiler_wait_steps": _PROFILER,
    "profiler_warmup_steps": _PROFILER, "profiler_active_steps": _PROFILER,
    "profiler_repeat": _PROFILER, "profiler_record_shapes": _PROFILER,
    "profiler_profile_memory": _PROFILER, "profiler_with_stack": _PROFILER,
    "profile_modules": _PROFILER,
    "fp8_backend": "fp8 training is not supported (see fp8)",
    "fp8_enable_fsdp_float8_all_gather": "fp8 training is not supported (see fp8)",
    # HF TrainingArguments that tunesmith sets itself or that do not apply
    "remove_unused_columns": "batches hold only the model's inputs already",
    "disable_tqdm": "tunesmith prints its own one-line progress",
    "include_num_input_tokens_seen": "trained (non-padding) tokens seen are always logged",
    "logging_dir": "TensorBoard logs go to output_dir/runs",
    "label_names": "labels are always the 'labels' column",
    "length_column_name": "group_by_length measures the tokenized rows itself",
    "local_rank": "torchrun sets each process's rank (nproc_per_node)",
    "enable_jit_checkpoint": "SIGTERM already finishes the step and saves a resumable checkpoint",
    "sortish_sampler": "a seq2seq sampler; decoder-only training uses group_by_length instead",
    "project": _TRACKIO, "trackio_space_id": _TRACKIO, "trackio_bucket_id": _TRACKIO,
    "trackio_static_space_id": _TRACKIO,
}


@dataclass(frozen=True)
class Refusal:
    """Why a key is refused and what to use instead; ``harmless``: values that change nothing."""

    instead: str
    harmless: tuple = ()


def _refused(instead: str, *harmless) -> Refusal:
    return Refusal(instead, harmless)


REFUSED: dict[str, Refusal] = {
    # model
    "adapter_folder": _refused("use adapter_name_or_path (a folder or a comma list)", None),
    "cache_dir": _refused("set HF_HOME or HF_HUB_CACHE in the environment", None),
    "split_special_tokens": _refused("special tokens are never split here", False),
    "new_special_tokens_config": _refused(
        "description-based init is not supported; new tokens start at the mean embedding", None),
    "init_special_tokens": _refused(
        "new tokens start at the mean embedding plus noise (noise_init) only", "noise_init"),
    "rope_scaling": _refused("use a model whose config.json sets rope_scaling", None),
    "shift_attn": _refused("S^2-attention is not supported; use packing or a shorter cutoff_len",
                           False),
    "mixture_of_depths": _refused("mixture-of-depths is not supported", None),
    "moe_aux_loss_coef": _refused("set router_aux_loss_coef in the model's config.json", None),
    "train_from_scratch": _refused("training from random weights is not supported; start from a "
                                   "pretrained model", False),
    "ms_hub_token": _refused("set MODELSCOPE_API_TOKEN in the environment", None),
    "om_hub_token": _refused("the Modelers hub is not supported; download the model and give its "
                             "folder", None),
    "export_quantization_bit": _refused(_GPTQ, None),
    "export_quantization_dataset": _refused(_GPTQ, None),
    "export_quantization_nsamples": _refused(_GPTQ, 128),
    "export_quantization_maxlen": _refused(_GPTQ, 1024),
    "export_hub_model_id": _refused(_HUB_PUSH, None),
    "sglang_maxlen": _refused(_SGLANG, 4096), "sglang_mem_fraction": _refused(_SGLANG, 0.7),
    "sglang_tp_size": _refused(_SGLANG, -1), "sglang_config": _refused(_SGLANG, None),
    "sglang_lora_backend": _refused(_SGLANG, "triton"),
    "use_kt": _refused(_KTRANSFORMERS, False), "kt_weight_path": _refused(_KTRANSFORMERS, None),
    "kt_expert_checkpoint_path": _refused(_KTRANSFORMERS, None),
    "kt_use_lora_experts": _refused(_KTRANSFORMERS, None, False),
    "kt_lora_expert_num": _refused(_KTRANSFORMERS, None),
    "kt_lora_expert_intermediate_size": _refused(_KTRANSFORMERS, None),
    # data
    "eval_num_beams": _refused("beam search is not supported; predict decodes greedily or samples",
                               None),
    "eval_on_each_dataset": _refused("evaluate each dataset separately with `tunesmith eval`", False),
    "tool_format": _refused("tools are rendered by the model's own chat template, or the "
                            "<tool_call> fallback where it has none (docs/llamafactory.md)", None),
    "enable_thinking": _refused("the chat template's own default applies", True),
    "preserve_thinking": _refused("the chat template's own handling of <think> applies", False),
    "tokenized_path": _refused("tokenized data is cached automatically (content-hashed)", None),
    # finetuning
    "create_new_adapter": _refused("to start a new adapter on a trained one, merge it first "
                                   "(tunesmith export) and train on the merged model", False),
    "use_apollo": _refused(_APOLLO, False),
    "apollo_target": _refused(_APOLLO, "all"), "apollo_rank": _refused(_APOLLO, 16),
    "apollo_update_interval": _refused(_APOLLO, 200), "apollo_scale": _refused(_APOLLO, 32.0),
    "apollo_proj": _refused(_APOLLO, "random"), "apollo_proj_type": _refused(_APOLLO, "std"),
    "apollo_scale_type": _refused(_APOLLO, "channel"), "apollo_layerwise": _refused(_APOLLO, False),
    "apollo_scale_front": _refused(_APOLLO, False),
    "use_badam": _refused(_BADAM, False), "badam_mode": _refused(_BADAM, "layer"),
    "badam_start_block": _refused(_BADAM, None), "badam_switch_mode": _refused(_BADAM, "ascending"),
    "badam_switch_interval": _refused(_BADAM, 50), "badam_update_ratio": _refused(_BADAM, 0.05),
    "badam_mask_mode": _refused(_BADAM, "adjacent"), "badam_verbose": _refused(_BADAM, 0),
    "use_llama_pro": _refused("LLaMA Pro block expansion is not supported; use finetuning_type: "
                              "freeze or lora", False),
    "use_adam_mini": _refused("Adam-mini is not supported; use optim: adamw_torch or adamw_8bit",
                              False),
    "use_mca": _refused("Megatron-Core is not supported; use deepspeed or fsdp", False),
    "use_hyper_parallel": _refused("hyper-parallel training is not supported; use deepspeed or "
                                   "fsdp", False),
    "hyper_parallel_args": _refused("hyper-parallel training is not supported", None),
    "use_muon": _refused("the Muon optimizer is not supported; use optim: adamw_torch", False),
    "use_dft_loss": _refused(_LOSSES, False), "use_asft_loss": _refused(_LOSSES, False),
    "asft_alpha": _refused(_LOSSES, 0.1), "use_eaft_loss": _refused(_LOSSES, False),
    "eaft_alpha": _refused(_LOSSES, 1.0),
    "compute_accuracy": _refused("token accuracy is not computed; `tunesmith predict` scores "
                                 "generations (BLEU/ROUGE)", False),
    # preference and PPO keys the dpo/kto/ppo stages do not have
    "pref_bco_weight": _refused("BCO is not supported; use pref_loss: sigmoid (DPO)", 0.0),
    "ref_model_adapters": _refused("merge the reference's adapter first (tunesmith export) and "
                                   "give the merged folder as ref_model", None),
    "ref_model_quantization_bit": _refused("the reference model loads like the policy", None),
    "ld_alpha": _refused("LD-DPO length desensitisation is not supported; use pref_loss: "
                         "sigmoid or simpo", None),
    "reward_model_adapters": _refused("merge the reward model's adapter first (tunesmith export) "
                                      "and give the merged folder as reward_model", None),
    "reward_model_quantization_bit": _refused("the reward model loads like the policy", None),
    "oft_rank": _refused("set oft_block_size (the rank and the block size are one choice)", 0),
    # generating
    "num_beams": _refused("beam search is not supported; use do_sample or greedy decoding", 1),
    # training (LLaMA-Factory's own)
    "ray_num_workers": _refused(_RAY, 1), "ray_init_kwargs": _refused(_RAY, None),
    "enable_torch_profiler": _refused(_PROFILER, False),
    "fp8": _refused("fp8 training is not supported; use bf16", False),
    # HF (Seq2Seq)TrainingArguments
    "push_to_hub": _refused(_HUB_PUSH, False), "hub_token": _refused(_HUB_PUSH, None),
    "hub_private_repo": _refused(_HUB_PUSH, None), "hub_model_id": _refused(_HUB_PUSH, None),
    "hub_strategy": _refused(_HUB_PUSH, "every_save"), "hub_always_push": _refused(_HUB_PUSH, False),
    "hub_revision": _refused(_HUB_PUSH, None),
    "generation_max_length": _refused("use max_new_tokens", None),
    "generation_num_beams": _refused("beam search is not supported; use do_sample or greedy "
                                     "decoding", None),
    "generation_config": _refused("set do_sample, temperature, top_p, top_k and max_new_tokens",
                                  None),
}


def _same(value, harmless) -> bool:
    """``value`` (YAML-typed, or a command-line string) equals ``harmless``."""
    if harmless is None:
        return value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
    if isinstance(harmless, bool):
        return value is harmless or (isinstance(value, str) and value.lower() == str(harmless).lower())
    if isinstance(harmless, (int, float)) and not isinstance(value, bool):
        try:
            return float(value) == float(harmless)
        except (TypeError, ValueError):
            return False
    return str(value) == str(harmless)


def is_harmless(refusal: Refusal, value) -> bool:
    """A refused key set to a value that changes nothing (LLaMA-Factory's default)."""
    return any(_same(value, h) for h in refusal.harmless)
