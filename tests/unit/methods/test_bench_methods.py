"""``python -m tunesmith.bench.methods``: one child run per method, rows and the table."""

from __future__ import annotations

from tunesmith.bench.methods import format_methods_table, run_methods_table


def test_methods_table_on_a_tiny_model(tiny_model_dir, chat_data, tmp_path):
    overrides = {"model_name_or_path": str(tiny_model_dir), "dataset": str(chat_data),
                 "cutoff_len": 64, "learning_rate": 1e-2}
    rows = run_methods_table(overrides, steps=2, methods=["lora", "bitfit", "adapter"],
                             work_dir=str(tmp_path / "bench"))
    lora, bitfit, adapter = rows
    assert lora["steps"] == 2 and lora["trainable"] > 0 and lora["total"] > lora["trainable"]
    assert lora["peak_rss_mib"] > 0 and lora["tokens_per_s"] > 0 and lora["last_loss"] > 0
    assert "no bias parameters" in bitfit["error"]
    assert "no bottleneck adapter" in adapter["error"]
    table = format_methods_table(rows)
    assert table.count("\n") == 2 + len(rows) - 1 and "| lora | " in table
    assert "not run: method 'adapter'" in table
