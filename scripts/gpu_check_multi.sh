#!/usr/bin/env bash
# Multi-GPU check for tunesmith: DDP, FSDP2 and DeepSpeed ZeRO-3 with CPU offload on 2+ GPUs.
#
# For each configuration: a LoRA SFT run of Qwen2.5-0.5B-Instruct on generated chat rows, the peak
# memory of every GPU (nvidia-smi, polled every 200 ms) and the trained tokens per second
# (num_input_tokens_seen / train_runtime from the run's trainer_state.json). Prints a markdown
# table and writes it to OUT/table.md; each run's log and record stay in OUT/<config>/.
#
# usage: scripts/gpu_check_multi.sh [OUT]          (scripts/gpu_check.sh calls it when present)
# env:   MULTI_MODEL or MODEL (a local dir or hub id, default Qwen/Qwen2.5-0.5B-Instruct), NGPU (default: all),
#        STEPS (30), BATCH (per GPU, 4), CUTOFF (1024), PYTHON or PY (python), CONFIGS ("ddp fsdp zero3_offload")
# needs: pip install 'tunesmith[deepspeed]' for zero3_offload (else that row says why it was skipped)
set -uo pipefail

OUT=${1:-gpu_check_multi}
MODEL=${MULTI_MODEL:-${MODEL:-Qwen/Qwen2.5-0.5B-Instruct}}
PYTHON=${PYTHON:-${PY:-python}}
STEPS=${STEPS:-30}
BATCH=${BATCH:-4}
CUTOFF=${CUTOFF:-1024}
CONFIGS=${CONFIGS:-"ddp fsdp zero3_offload"}
HERE=$(cd "$(dirname "$0")/.." && pwd)
NGPU=${NGPU:-$(nvidia-smi -L 2>/dev/null | wc -l)}

if [ "${NGPU:-0}" -lt 2 ]; then
  echo "gpu_check_multi: needs 2 or more CUDA GPUs (found ${NGPU:-0}); nothing run"
  exit 0
fi
mkdir -p "$OUT"
DATA="$OUT/chat_rows.jsonl"
"$PYTHON" - "$DATA" <<'PY'
import json, random, sys
rng = random.Random(0)
words = "the model learns to answer questions about data, memory, speed and tokens".split()
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    for i in range(4000):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(8, 60)))
        a = " ".join(rng.choice(words) for _ in range(rng.randint(20, 300)))
        fh.write(json.dumps({"messages": [{"role": "user", "content": f"{i}: {q}?"},
                                          {"role": "assistant", "content": a}]}) + "\n")
PY

extra_for() {
  case "$1" in
    ddp) echo "" ;;
    fsdp) echo "fsdp=$HERE/examples/fsdp/fsdp_config.json" ;;
    zero3_offload) echo "deepspeed=$HERE/examples/deepspeed/ds_z3_offload_config.json" ;;
  esac
}

summary() {  # config, status -> one table row
  "$PYTHON" - "$OUT" "$1" "$2" "$NGPU" <<'PY'
import csv, json, sys
from pathlib import Path
out, name, status, ngpu = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
peaks = {}
mem = out / f"{name}.mem.csv"
if mem.is_file():
    for row in csv.reader(mem.open()):
        if len(row) == 2 and row[0].strip().isdigit():
            i, used = int(row[0]), float(row[1])
            peaks[i] = max(peaks.get(i, 0.0), used)
state = out / name / "trainer_state.json"
tps = "-"
if state.is_file():
    s = json.loads(state.read_text())
    logs = [h for h in s.get("log_history", []) if "train_runtime" in h]
    seen = s.get("num_input_tokens_seen") or 0
    if logs and seen:
        tps = f"{seen / logs[-1]['train_runtime']:,.0f}"
per_gpu = " / ".join(f"{peaks[i] / 1024:.1f}" for i in sorted(peaks)) or "-"
print(f"| {name} | {ngpu} | {per_gpu} | {tps} | {status} |")
PY
}

TABLE="$OUT/table.md"
{
  echo "| configuration | GPUs | peak memory per GPU (GiB) | trained tokens/s | status |"
  echo "|---|---|---|---|---|"
} > "$TABLE"
for cfg in $CONFIGS; do
  status=ok
  if [ "$cfg" = zero3_offload ] && ! "$PYTHON" -c "import deepspeed" >/dev/null 2>&1; then
    echo "| $cfg | $NGPU | - | - | skipped: pip install 'tunesmith[deepspeed]' |" >> "$TABLE"
    continue
  fi
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/$cfg.mem.csv" &
  POLL=$!
  # shellcheck disable=SC2046
  "$PYTHON" -m tunesmith.cli train model_name_or_path="$MODEL" dataset="$DATA" \
    output_dir="$OUT/$cfg" overwrite_output_dir=true nproc_per_node="$NGPU" max_steps="$STEPS" \
    per_device_train_batch_size="$BATCH" cutoff_len="$CUTOFF" bf16=true lora_rank=16 \
    lora_target=all logging_steps=5 save_strategy=no plot_loss=false $(extra_for "$cfg") \
    > "$OUT/$cfg.log" 2>&1 || status="failed (see $OUT/$cfg.log)"
  kill "$POLL" 2>/dev/null; wait "$POLL" 2>/dev/null
  summary "$cfg" "$status" >> "$TABLE"
done
cat "$TABLE"
