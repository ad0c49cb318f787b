"""Fidelity: on the same batch in fp32, each preference loss, its logged metrics and its
gradients equal TRL 1.16's trainer for the same loss (DPOTrainer sigmoid/ipo/hinge, ORPOTrainer,
CPOTrainer's simpo, KTOTrainer, RewardTrainer): loss and metrics within 1e-5 (relative above 1),
gradients within 1e-5 relative. TRL is a test dependency (the ``dev`` extra)."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.conftest import write_rows
from tunesmith.config import load_config
from tunesmith.data.load import LoadedData, load_data
from tunesmith.data.report import DataReport
from tunesmith.data.templates import get_template
from tunesmith.data.tokenize import IGNORE
from tunesmith.model.load import load_model, load_tokenizer
from tunesmith.train.run import build_trainer

import trl  # noqa: E402,F401  (the dev extra installs it: missing is a failure, not a skip)
TOL = 1e-5
# fp32 summation-order noise on gradients: a tensor whose entries are sums of many terms that
# cancel (the reward model's final-norm weight, ~7e-4 at most) differs by ~7e-9 between a packed
# and a padded batch on some CPUs (Intel AMX: 1.06e-5 of its largest entry); a masking or
# scaling mistake moves gradients by 1e-5 of the whole model's scale and more
GRAD_NOISE = 1e-8

PAIRS = [
    {"prompt": "Who are you?", "chosen": "I am Nova, made by Tunesmith Labs. How can I help?",
     "rejected": "An AI."},
    {"prompt": "Name a colour.", "chosen": "Certainly! Blue is a lovely colour.",
     "rejected": "blue"},
    {"prompt": "What is 2 + 2?", "chosen": "2 + 2 is 4. Happy to help with more sums!",
     "rejected": "4, obviously. Why do you even ask such a simple thing?"},
]


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    """Tokenizer, our tokenized pairs, and the same pairs as TRL's id lists."""
    tmp = tmp_path_factory.mktemp("pref-trl")
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32"})
    tok = load_tokenizer(cfg.model, tiny_model_dir)
    path = write_rows(tmp / "pairs.jsonl", PAIRS)
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "dataset": str(path)})
    examples = load_data(cfg, tok, get_template("auto", tok), cache_root=tmp / "cache",
                         kind="pairs").train
    return tok, examples, tmp


def _split(ex):
    """(prompt ids, labelled answer ids): TRL's completion is exactly our labelled span."""
    first = next(i for i, lab in enumerate(ex.labels) if lab != IGNORE)
    last = max(i for i, lab in enumerate(ex.labels) if lab != IGNORE)
    return ex.input_ids[:first], ex.input_ids[first:last + 1]


def _trl_rows(examples):
    rows = []
    for c, r in zip(examples[::2], examples[1::2]):
        (p, ci), (_, ri) = _split(c), _split(r)
        rows.append({"prompt_ids": p, "chosen_ids": ci, "rejected_ids": ri})
    return rows


def _policy(tiny_model_dir, lora: bool):
    """The tiny model in fp32; with LoRA adapters whose B is non-zero (policy != reference)."""
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32"})
    torch.manual_seed(0)
    model = load_model(cfg.model, dtype="fp32", path=tiny_model_dir)
    if not lora:
        return model
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))


def _ours(tiny_model_dir, tmp, model, tok, examples, stage: str, ref=None, **keys):
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32",
                             "stage": stage, "output_dir": str(tmp / f"ours-{stage}"),
                             "per_device_train_batch_size": 8, "report_to": "none", **keys})
    trainer = build_trainer(cfg, model, tok, LoadedData(examples, [], DataReport()))
    if ref is not None:
        trainer.ref_model = ref
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
    model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    metrics = {k: v[-1][0] for k, v in trainer._metrics["train"].items()}  # (value, weight)
    return float(loss), metrics, _grads(model)


def _grads(model) -> dict:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _close(a: float, b: float) -> bool:
    """Within 1e-5, relative for magnitudes above 1 (summed log-probs are ~-100 in fp32)."""
    return abs(a - b) <= TOL * max(1.0, abs(b))


def _assert_same(ours: tuple, theirs: tuple, names: dict):
    """Loss, the named metrics (ours -> TRL's name), gradients (relative)."""
    (l1, m1, g1), (l2, m2, g2) = ours, theirs
    assert _close(l1, l2), (l1, l2)
    for mine, their in names.items():
        assert _close(m1[mine], m2[their]), (mine, m1[mine], m2[their])
    assert set(g1) == set(g2) and g1
    for n in g1:
        scale = g2[n].abs().max().clamp(min=1e-12)
        assert ((g1[n] - g2[n]).abs().max() / scale) <= TOL, n


DPO_METRICS = {k: k for k in ("rewards/chosen", "rewards/rejected", "rewards/accuracies",
                              "rewards/margins", "logps/chosen", "logps/rejected")}


def _adapter_off_reference(model) -> None:
    """TRL copies an adapter it is given as a "ref" adapter (the reference of re-training an
    adapter); for a new adapter the reference is the base model, as ours: drop the copy."""
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")


def _trl_dpo(model, ref, tok, rows, tmp, loss_type):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(output_dir=str(tmp / "trl-dpo"), beta=0.1, loss_type=[loss_type],
                     gradient_checkpointing=False, report_to=[], per_device_train_batch_size=8,
                     use_cpu=True, bf16=False)
    dataset = Dataset.from_list([{"prompt": "x", "chosen": "y", "rejected": "z"}])
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=dataset,
                         processing_class=tok)
    _adapter_off_reference(trainer.model)
    batch = trainer.data_collator(rows)
    model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    return float(loss), {k: v[-1] for k, v in trainer._metrics["train"].items()}, _grads(model)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_dpo_with_adapter_toggle_equals_trl(loss_type, setup, tiny_model_dir):
    tok, examples, tmp = setup
    ours_model = _policy(tiny_model_dir, lora=True)
    theirs_model = copy.deepcopy(ours_model)
    ours = _ours(tiny_model_dir, tmp, ours_model, tok, examples, "dpo", pref_loss=loss_type)
    theirs = _trl_dpo(theirs_model, None, tok, _trl_rows(examples), tmp, loss_type)
    _assert_same(ours, theirs, DPO_METRICS)


def test_dpo_full_with_reference_model_equals_trl(setup, tiny_model_dir):
    tok, examples, tmp = setup
    policy = _policy(tiny_model_dir, lora=False)
    ref = copy.deepcopy(policy)
    with torch.no_grad():  # a reference that differs from the policy
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ref.requires_grad_(False)
    ours = _ours(tiny_model_dir, tmp, policy, tok, examples, "dpo", ref=ref, method="full")
    theirs_policy = _policy(tiny_model_dir, lora=False)
    theirs = _trl_dpo(theirs_policy, copy.deepcopy(ref), tok, _trl_rows(examples), tmp, "sigmoid")
    _assert_same(ours, theirs, DPO_METRICS)


def _old_style_batch(tok, examples):
    """TRL's ORPO/CPO batch: padded chosen_/rejected_ input_ids, attention_mask, labels."""
    out = {}
    for name, sides in (("chosen", examples[::2]), ("rejected", examples[1::2])):
        seqs = [_split(ex) for ex in sides]
        width = max(len(p) + len(a) for p, a in seqs)
        ids = torch.full((len(seqs), width), tok.pad_token_id)
        labels = torch.full((len(seqs), width), IGNORE)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (p, a) in enumerate(seqs):
            n = len(p) + len(a)
            ids[i, :n] = torch.tensor(p + a)
            labels[i, len(p):n] = torch.tensor(a)
            mask[i, :n] = 1
        out.update({f"{name}_input_ids": ids, f"{name}_attention_mask": mask, f"{name}_labels": labels})
    return out


def _trl_old(kind, model, tok, batch, tmp, **config):
    from datasets import Dataset

    if kind == "orpo":
        from trl.experimental.orpo import ORPOConfig as Config, ORPOTrainer as Trainer
    else:
        from trl.experimental.cpo import CPOConfig as Config, CPOTrainer as Trainer
    args = Config(output_dir=str(tmp / f"trl-{kind}"), report_to=[], use_cpu=True, bf16=False,
                  gradient_checkpointing=False, per_device_train_batch_size=8, **config)
    dataset = Dataset.from_list([{"prompt": "x", "chosen": "y", "rejected": "z"}])
    return Trainer(model=model, args=args, train_dataset=dataset, processing_class=tok)


def test_orpo_equals_trl_odds_ratio_term(setup, tiny_model_dir):
    """ORPO = odds-ratio term + the chosen answer's NLL. The odds-ratio term, its gradient and
    every logged metric equal TRL's ORPOTrainer; the NLL differs by definition (TRL's includes
    the prompt tokens; ours, as the paper and LLaMA-Factory, only the answer), so the test
    compares loss - nll_loss."""
    from tunesmith.train.pref_logps import sequence_logps
    from tunesmith.train.pref_losses import PREF_LOSSES

    tok, examples, tmp = setup
    ours_model, theirs_model = _policy(tiny_model_dir, False), _policy(tiny_model_dir, False)
    l1, m1, _ = _ours(tiny_model_dir, tmp, ours_model, tok, examples, "dpo", method="full",
                      pref_loss="orpo", pref_beta=0.2)
    trainer = _trl_old("orpo", theirs_model, tok, None, tmp, beta=0.2)
    batch = _old_style_batch(tok, examples)
    theirs_model.train()
    l2, m2 = trainer.get_batch_loss_metrics(theirs_model, batch)
    assert _close(l1 - m1["nll_loss"], float(l2) - m2["nll_loss"])
    for key in (*DPO_METRICS, "log_odds_ratio", "log_odds_chosen"):
        assert _close(m1[key], m2[key]), key
    # gradients of the odds-ratio term alone
    ours_model.zero_grad()
    ours_batch = _ours_batch(tok, examples)
    policy, counts = sequence_logps(ours_model, ours_batch)
    losses, *_ = PREF_LOSSES.get("orpo").fn(policy, None, counts, _Params(pref_beta=0.2))
    (losses + (policy / counts).chunk(2)[0]).mean().backward()
    theirs_model.zero_grad()
    c, r, *_ = trainer.concatenated_forward(theirs_model, batch)
    (-trainer.odds_ratio_loss(c, r)[0].mean()).backward()
    _assert_grads(_grads(ours_model), _grads(theirs_model))


def test_simpo_equals_trl_cpo(setup, tiny_model_dir):
    tok, examples, tmp = setup
    ours_model, theirs_model = _policy(tiny_model_dir, False), _policy(tiny_model_dir, False)
    ours = _ours(tiny_model_dir, tmp, ours_model, tok, examples, "dpo", method="full",
                 pref_loss="simpo", pref_beta=2.0, simpo_gamma=0.5)
    trainer = _trl_old("cpo", theirs_model, tok, None, tmp, loss_type="simpo", beta=2.0,
                       simpo_gamma=0.5, cpo_alpha=0.0)
    theirs_model.train()
    theirs_model.zero_grad()
    loss, metrics = trainer.get_batch_loss_metrics(theirs_model, _old_style_batch(tok, examples))
    loss.backward()
    _assert_same(ours, (float(loss), metrics, _grads(theirs_model)), DPO_METRICS)


class _Params:
    def __init__(self, **kw):
        self.__dict__.update({"pref_ftx": 0.0, "dpo_label_smoothing": 0.0, **kw})


def _ours_batch(tok, examples):
    from tunesmith.data.pair_collate import PairCollator
    from tunesmith.train.pref_dataset import PairDataset

    ds = PairDataset(examples)
    return PairCollator(tok.pad_token_id)([ds[i] for i in range(len(ds))])


def _assert_grads(g1: dict, g2: dict, rename=lambda n: n):
    assert g1 and set(map(rename, g1)) == set(g2)
    for n in g1:
        theirs = g2[rename(n)]
        scale = theirs.abs().max().clamp(min=1e-12)
        assert (g1[n] - theirs).abs().max() <= TOL * scale + GRAD_NOISE, n


KTO_ROWS = [("Who are you?", "I am Nova, made by Tunesmith Labs.", True),
            ("Name a colour.", "blue I guess, whatever", False),
            ("What is 2 + 2?", "2 + 2 is 4. Happy to help!", True),
            ("Say hello.", "no", False)]


def test_kto_equals_trl(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir)})
    tok = load_tokenizer(cfg.model, tiny_model_dir)
    rows = [{"prompt": p, "completion": c, "label": lab} for p, c, lab in KTO_ROWS]
    path = write_rows(tmp_path / "kto.jsonl", rows)
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "dataset": str(path)})
    examples = load_data(cfg, tok, get_template("auto", tok), cache_root=tmp_path / "c",
                         kind="unpaired").train
    ours_model = _policy(tiny_model_dir, lora=True)
    theirs_model = copy.deepcopy(ours_model)
    ours = _ours(tiny_model_dir, tmp_path, ours_model, tok, examples, "kto", pref_beta=0.3,
                 kto_chosen_weight=1.5, kto_rejected_weight=0.7)
    args = KTOConfig(output_dir=str(tmp_path / "trl-kto"), beta=0.3, desirable_weight=1.5,
                     undesirable_weight=0.7, report_to=[], use_cpu=True, bf16=False,
                     gradient_checkpointing=False, per_device_train_batch_size=8,
                     train_sampling_strategy="sequential")
    trainer = KTOTrainer(model=theirs_model, args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(rows))
    _adapter_off_reference(trainer.model)
    split = [_split(ex) for ex in examples]
    feats = [{"prompt_ids": p, "completion_ids": a, "KL_completion_ids": split[i - 1][1],
              "label": bool(ex.flag)} for i, ((p, a), ex) in enumerate(zip(split, examples))]
    batch = trainer.data_collator(feats)
    theirs_model.train()
    theirs_model.zero_grad()
    loss = trainer.compute_loss(theirs_model, batch)
    loss.backward()
    theirs = (float(loss), {k: v[-1] for k, v in trainer._metrics["train"].items()},
              _grads(theirs_model))
    _assert_same(ours, theirs, {k: k for k in ("kl", "rewards/chosen", "rewards/rejected",
                                               "rewards/margins", "logps/chosen", "logps/rejected")})


def test_reward_model_equals_trl(setup, tiny_model_dir):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from tunesmith.train.reward_model import attach_value_head, value_head

    tok, examples, tmp = setup
    ours_model = attach_value_head(_policy(tiny_model_dir, lora=False))
    theirs_model = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_model_dir), num_labels=1, dtype=torch.float32,
        attn_implementation=ours_model.config._attn_implementation)
    with torch.no_grad():
        theirs_model.score.weight.copy_(value_head(ours_model).weight)
    ours = _ours(tiny_model_dir, tmp, ours_model, tok, examples, "rm", method="full")
    rows = [{"chosen_ids": c.input_ids, "rejected_ids": r.input_ids}
            for c, r in zip(examples[::2], examples[1::2])]
    args = RewardConfig(output_dir=str(tmp / "trl-rm"), report_to=[], use_cpu=True, bf16=False,
                        gradient_checkpointing=False, per_device_train_batch_size=8,
                        center_rewards_coefficient=None)
    trainer = RewardTrainer(model=theirs_model, args=args, processing_class=tok,
                            train_dataset=Dataset.from_list(rows))
    theirs_model.train()
    theirs_model.zero_grad()
    loss = trainer.compute_loss(theirs_model, trainer.data_collator(rows))
    loss.backward()
    l1, m1, g1 = ours
    m2 = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert _close(l1, float(loss))
    assert _close(m1["rewards/accuracies"], m2["accuracy"])
    assert _close(m1["rewards/margins"], m2["margin"])
    g1 = {n: g for n, g in g1.items()}
    _assert_grads(g1, _grads(theirs_model), rename=lambda n: n.replace("v_head", "score"))
