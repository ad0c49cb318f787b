"""Fidelity: for fixed completions and rewards, tunesmith's GRPO advantages, loss and gradients
equal TRL's GRPOTrainer (1.16) within 1e-5 in fp32, for each loss_type, with the KL term, the
asymmetric clip (epsilon_high) and off-policy ratios (num_iterations > 1) in play.

TRL's generation is replaced by the fixed completions; everything after it (reward weighting,
group normalization, reference log-probs with the adapter switched off, the clipped loss) is
TRL's own code. TRL is a test dependency only (the ``dev`` extra).
"""

import copy

import pytest
import torch

import trl  # noqa: E402,F401  (the dev extra installs it: missing is a failure, not a skip)

from tunesmith.train.grpo_loss import LossSettings, group_advantages, grpo_loss  # noqa: E402
from tunesmith.train.grpo_trainer import pad_rollout  # noqa: E402
from tunesmith.train.policy_logps import completion_logps  # noqa: E402

PROMPTS = ["What is 2 plus 3?", "Name a colour of the sky on a clear day, please."]
G = 3
TEMPERATURE = 0.7
REWARDS = [[1.0, 0.0, 0.5, 0.2, 0.9, 0.9], [0.25, 0.0, 1.0, -1.0, 0.5, 0.0]]  # two functions
WEIGHTS = [1.0, 0.5]


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=["q_proj", "v_proj", "down_proj"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a non-zero adapter: policy != reference, so the KL term matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    prompt_ids = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                                return_dict=False) for m in messages]
    lengths = [5, 2, 7, 4, 6, 3]  # right padding differs per completion
    completion_ids = [torch.randint(10, 2000, (n,), generator=gen).tolist() for n in lengths]
    return tokenizer, model, messages, prompt_ids, completion_ids


@pytest.fixture(scope="module")
def trl_trainer(setup, tmp_path_factory):
    """One TRL trainer (building it is slow); each test sets its loss_type and num_iterations."""
    return _trl_trainer(setup, "dapo", tmp_path_factory.mktemp("trl"), 1)


def _trl_trainer(setup, loss_type, tmp_path, num_iterations):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tokenizer, model, messages, prompt_ids, completion_ids = setup
    funcs = [lambda completions, **kw: REWARDS[0], lambda completions, **kw: REWARDS[1]]
    for i, f in enumerate(funcs):
        f.__name__ = f"r{i}"
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=len(completion_ids),
                      num_generations=G, max_completion_length=8, beta=0.04, epsilon=0.2,
                      epsilon_high=0.28, loss_type=loss_type, temperature=TEMPERATURE,
                      reward_weights=WEIGHTS, num_iterations=num_iterations, use_cpu=True,
                      bf16=False, report_to=[], logging_steps=1)
    trainer = GRPOTrainer(model=copy.deepcopy(model), reward_funcs=funcs, args=args,
                          processing_class=tokenizer,
                          train_dataset=Dataset.from_list([{"prompt": m} for m in messages]))
    # TRL keeps a copy of an adapter it is handed ("ref") as the reference; tunesmith's reference
    # is the base with the adapter off (TRL's choice for a new adapter), so drop the copy.
    if "ref" in trainer.model.peft_config:
        trainer.model.delete_adapter("ref")
    texts = [tokenizer.decode(c) for c in completion_ids]
    rep_prompts = [p for p in prompt_ids for _ in range(G)]
    trainer._generate = lambda prompts: (rep_prompts, completion_ids, None, texts, None, {},
                                         None, None)
    return trainer


@pytest.mark.parametrize("loss_type,num_iterations", [("grpo", 1), ("dr_grpo", 1), ("dapo", 1),
                                                      ("dapo", 2)])
def test_loss_and_gradients_equal_trl(setup, trl_trainer, loss_type, num_iterations):
    tokenizer, model, messages, prompt_ids, completion_ids = setup
    trainer = trl_trainer
    trainer.loss_type, trainer.num_iterations = loss_type, num_iterations
    trainer.model.eval()
    trainer.model.zero_grad(set_to_none=True)
    rows = [{"prompt": m} for m in messages for _ in range(G)]
    inputs = trainer._generate_and_score_completions(rows)
    if num_iterations > 1:  # off-policy ratios: old log-probs shifted, so the clip bites
        shift = torch.linspace(-0.4, 0.4, inputs["completion_ids"].numel())
        inputs["old_per_token_logps"] = (inputs["old_per_token_logps"]
                                         + shift.view_as(inputs["completion_ids"]))
    trl_loss = trainer._compute_loss(trainer.model, inputs)
    trl_loss.backward()
    trl_grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}

    ours = copy.deepcopy(model).eval()
    rewards = (torch.tensor(REWARDS).T * torch.tensor(WEIGHTS)).sum(1)
    advantages = group_advantages(rewards, G, "group")
    assert torch.allclose(advantages, inputs["advantages"], atol=1e-5)
    batch = pad_rollout([p for p in prompt_ids for _ in range(G)], completion_ids,
                        tokenizer.pad_token_id)
    assert torch.equal(batch["completion_mask"], inputs["completion_mask"])
    with torch.no_grad(), ours.disable_adapter():
        ref = completion_logps(ours, batch, TEMPERATURE)
    assert torch.allclose(ref * batch["completion_mask"],
                          inputs["ref_per_token_logps"] * inputs["completion_mask"], atol=1e-5)
    logps = completion_logps(ours, batch, TEMPERATURE)
    settings = LossSettings(loss_type, 0.04, 0.2, 0.28, 8)
    loss, metrics = grpo_loss(logps, inputs.get("old_per_token_logps"), ref, advantages,
                              batch["completion_mask"], settings)
    loss.backward()
    assert abs(loss.item() - trl_loss.item()) < 1e-5
    assert metrics["kl"] > 0
    if num_iterations > 1:
        assert metrics["clip_ratio/region_mean"] > 0
    for name, p in ours.named_parameters():
        if p.requires_grad:
            scale = max(trl_grads[name].abs().max().item(), 1e-8)
            assert (p.grad - trl_grads[name]).abs().max().item() / scale < 1e-5, name
