"""The preference batch layout: a pair's prompt computed once (4D mask) gives every answer the
same log-probs and reward as separate padded sequences, with fewer tokens fed."""

from __future__ import annotations

import torch

from tunesmith.data.pair_collate import PairCollator
from tunesmith.data.tokenize import IGNORE
from tunesmith.train.pref_logps import sequence_logps
from tunesmith.train.reward_model import attach_value_head, reward_scores


def _pairs(seed: int = 0, n: int = 3):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        prompt = torch.randint(5, 400, (6 + 3 * i,), generator=g).tolist()
        sides = {}
        for name, extra in (("chosen", 5 + i), ("rejected", 3 + 2 * i)):
            answer = torch.randint(5, 400, (extra,), generator=g).tolist()
            sides[name] = {"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer}
        out.append(sides)
    out.append({"chosen": {"input_ids": [7, 8, 9, 10], "labels": [IGNORE, IGNORE, 9, 10]},
                "rejected": {"input_ids": [7, 11, 12], "labels": [IGNORE, IGNORE, 12]}})
    return out  # the last pair's prompts differ: packed as two sequences


def test_shared_prompt_equals_separate_sequences(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = attach_value_head(AutoModelForCausalLM.from_pretrained(
        str(tiny_model_dir), dtype=torch.float32, attn_implementation="sdpa"))
    pairs = _pairs()
    shared = PairCollator(0, share=True)(pairs)
    padded = PairCollator(0, pack=False, share=False)(pairs)
    assert "mask_4d" in shared and "attention_mask" in padded
    assert shared["input_ids"].numel() < padded["input_ids"].numel()
    with torch.no_grad():
        (a, na), (b, nb) = sequence_logps(model, shared), sequence_logps(model, padded)
        ra, rb = reward_scores(model, shared), reward_scores(model, padded)
    assert torch.equal(na, nb) and na.tolist()[:4] == [5, 6, 7, 2]
    assert torch.allclose(a, b, atol=1e-4) and torch.allclose(ra, rb, atol=1e-5)


def test_passes_hold_whole_pairs_in_order_with_their_share():
    from tunesmith.data.pair_collate import token_groups

    assert token_groups([30, 30, 50, 10, 90], 60) == [[0, 1], [2, 3], [4]]  # 90 > 60: alone
    assert token_groups([5, 5], 60) == [[0, 1]]
    pairs = _pairs(n=3)  # segments of 14, 20, 26 tokens (shared prompts) and 4 + 3 tokens
    whole = PairCollator(0)(pairs)
    split = PairCollator(0, pass_tokens=33)(pairs)
    parts = split["passes"]
    assert [float(p["pass_weight"]) for p in parts] == [0.25, 0.25, 0.5]
    assert int(split["n_tokens"]) == int(whole["n_tokens"]) == sum(int(p["n_tokens"]) for p in parts)
    # each part is the collation of its own pairs, in the batch's order
    assert [int(p["n_seqs"]) for p in parts] == [2, 2, 4]

    def answers(batch):  # every sequence's answer tokens, chosen ones first
        return [batch["target_ids"][batch["target_seq"] == s].tolist()
                for s in range(int(batch["n_seqs"]))]

    per_part = [answers(p) for p in parts]
    chosen = [a for ans in per_part for a in ans[:len(ans) // 2]]
    rejected = [a for ans in per_part for a in ans[len(ans) // 2:]]
    assert chosen + rejected == answers(whole)
    assert "passes" not in PairCollator(0, pass_tokens=10_000)(pairs)  # fits in one pass


def test_pair_tokens_is_what_the_collator_feeds():
    from tunesmith.data.pair_collate import pair_tokens

    for pair in _pairs(n=3):
        c, r = pair["chosen"], pair["rejected"]
        fed = int(PairCollator(0)([pair])["n_tokens"])
        assert pair_tokens(c["input_ids"], c["labels"], r["input_ids"], r["labels"]) == fed
        assert pair_tokens(c["input_ids"], c["labels"], r["input_ids"], r["labels"],
                           share=False) == len(c["input_ids"]) + len(r["input_ids"])
    assert fed == 7  # the last pair's prompts differ: both sides whole
