"""Bench workload W4 (sigmoid DPO on preference pairs): every tool gets tunesmith's tokenized
pairs, the peers run their DPO trainers, and the spec counts chosen + rejected tokens."""

from __future__ import annotations

import json

from tunesmith.bench.peers import PEERS, script_for
from tunesmith.bench.prepare import prepare
from tunesmith.bench.workloads import get_workload, train_overrides
from tunesmith.bench.workloads.generate_w4 import w4_rows


def test_w4_is_a_dpo_workload_of_seeded_pairs(tmp_path):
    w = get_workload("W4")
    assert json.loads(w.path.read_text()) == w4_rows()  # the shipped file is the generator's
    keys = train_overrides(w, tmp_path)
    assert (keys["stage"], keys["pref_beta"], keys["pref_loss"]) == ("dpo", 0.1, "sigmoid")
    assert keys["per_device_train_batch_size"] == 4


def test_w4_prepares_the_same_pairs_for_every_tool(tmp_path, bundled_dir):
    spec = prepare(get_workload("W4"), tmp_path, steps=2)
    rows = [json.loads(x) for x in open(spec["rows"], encoding="utf-8")]
    assert spec["stage"] == "dpo" and spec["n_rows"] == len(rows) == 32 and spec["steps"] == 2
    first8 = sum(len(r[s]["input_ids"]) for r in rows[:8] for s in ("chosen", "rejected"))
    assert spec["tokens"] == first8
    r = rows[0]
    assert r["chosen"]["input_ids"][:len(r["prompt_ids"])] == r["prompt_ids"]
    assert r["chosen"]["input_ids"][len(r["prompt_ids"]):][:len(r["chosen_ids"])] == r["chosen_ids"]
    info = json.loads((tmp_path / "lf_data" / "dataset_info.json").read_text())
    assert info["bench"]["ranking"] is True
    spec_path = tmp_path / "spec.json"
    assert script_for(PEERS["trl"], spec_path) == "trl_dpo_child.py"
    assert script_for(PEERS["llamafactory"], spec_path) == "lf_dpo_child.py"


def test_peers_keep_their_own_checkpointing_unless_the_bench_sets_it():
    """Unset (``--modes defaults``): no key, so LLaMA-Factory and TRL checkpoint as they come;
    set: passed through."""
    from tunesmith.bench.peer_scripts.peer_args import lf_args, trl_args

    spec = {"model": "m", "lora_rank": 8, "lora_alpha": 16, "lf_dataset_dir": "d",
            "default_system": "", "cutoff_len": 1024, "output_dir": "o", "batch": 4,
            "learning_rate": 5e-4, "epochs": 1, "max_steps": 4, "lr_scheduler_type": "cosine",
            "seed": 42, "dtype": "fp32"}
    for value, lf_disable, trl_value in ((None, False, "unset"), (True, False, True),
                                         (False, True, False)):
        case = {**spec, "gradient_checkpointing": value}
        assert lf_args(case, stage="dpo")["disable_gradient_checkpointing"] is lf_disable
        assert trl_args(case).get("gradient_checkpointing", "unset") is trl_value
