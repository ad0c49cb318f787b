#!/usr/bin/env bash
# The GPU path end to end, on a CUDA machine with network (or a warm HF cache):
# download Qwen2.5-0.5B-Instruct, train LoRA and QLoRA for 30 steps on the emotional-support
# example, predict (BLEU/ROUGE), export (merge check), serve with the HF engine and with vLLM
# (when installed), then print one table: tokens/s, peak GPU memory, first loss, BLEU/ROUGE, merge
# check. A multi-GPU part runs too when scripts/gpu_check_multi.sh exists.
#
#   make gpu-check                      # or: bash scripts/gpu_check.sh [OUT_DIR]
#   MODEL=Qwen/Qwen2.5-7B-Instruct STEPS=30 bash scripts/gpu_check.sh
# A CPU rehearsal of the same commands (what the tests' machines can do):
#   ALLOW_CPU=1 HF_HUB_OFFLINE=1 MODEL=HuggingFaceTB/SmolLM2-135M-Instruct STEPS=2 \
#     PREDICT_SAMPLES=2 EXTRA="per_device_train_batch_size=1 gradient_accumulation_steps=1 \
#     cutoff_len=256" bash scripts/gpu_check.sh /tmp/gpu-check-rehearsal
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
OUT="${1:-${OUT:-$ROOT/gpu-check-out}}"
MODEL="${MODEL:-Qwen/Qwen2.5-0.5B-Instruct}"
STEPS="${STEPS:-30}"
PY="${PY:-python3}"
TS=("$PY" -m tunesmith.cli)
PORT="${PORT:-8765}"
PREDICT_SAMPLES="${PREDICT_SAMPLES:-32}"
cd "$ROOT"
mkdir -p "$OUT"

if [[ "${ALLOW_CPU:-0}" != 1 ]] && \
   ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu-check: no CUDA device visible to $PY (torch.cuda.is_available() is False); nothing run" >&2
  exit 2
fi

step() { echo; echo "== $*" >&2; }
read -r -a EXTRA_ARGS <<<"${EXTRA:-}"  # more key=value overrides for every train line
COMMON=("model_name_or_path=$MODEL" "max_steps=$STEPS" "warmup_steps=3" "logging_steps=1"
        "save_strategy=no" "report_to=none" "overwrite_output_dir=true" "${EXTRA_ARGS[@]}")

step "environment"
"${TS[@]}" env | tee "$OUT/env.txt"

step "download $MODEL"
"${TS[@]}" download "$MODEL" | tee "$OUT/download.txt"

step "train LoRA ($STEPS steps)"
"${TS[@]}" train examples/emotional_support.yaml "${COMMON[@]}" output_dir="$OUT/lora" \
  2>&1 | tee "$OUT/lora.log"

step "train QLoRA ($STEPS steps)"
"${TS[@]}" train examples/emotional_support_qlora.yaml "${COMMON[@]}" output_dir="$OUT/qlora" \
  2>&1 | tee "$OUT/qlora.log"

step "predict with the LoRA adapter (BLEU-4, ROUGE)"
"${TS[@]}" predict examples/emotional_support.yaml model_name_or_path="$MODEL" \
  adapter_name_or_path="$OUT/lora" max_samples="$PREDICT_SAMPLES" max_new_tokens=128 \
  output_dir="$OUT/predict" 2>&1 | tee "$OUT/predict.log"

step "export: merge the LoRA adapter (merged vs adapter logits checked)"
"${TS[@]}" export examples/emotional_support.yaml model_name_or_path="$MODEL" \
  adapter_name_or_path="$OUT/lora" export_dir="$OUT/merged" 2>&1 | tee "$OUT/export.log"

serve_probe() {  # $1: engine name, then the serve overrides
  local name="$1"; shift
  "${TS[@]}" serve model_name_or_path="$OUT/merged" model_name=check port="$PORT" "$@" \
    >"$OUT/serve_$name.log" 2>&1 &
  local pid=$!
  if "$PY" "$HERE/gpu_check.py" probe "http://127.0.0.1:$PORT" "$OUT/serve_$name.json"; then
    echo "serve ($name): ok" >&2
  else
    echo "serve ($name): failed, see $OUT/serve_$name.log" >&2
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

step "serve with the HF engine"
serve_probe hf infer_backend=hf

if "$PY" -c 'import vllm' 2>/dev/null; then
  step "serve with vLLM"
  serve_probe vllm infer_backend=vllm
else
  echo "vllm is not installed: the vLLM row is skipped (pip install vllm)" >&2
fi

if [[ -x "$HERE/gpu_check_multi.sh" || -f "$HERE/gpu_check_multi.sh" ]]; then
  step "multi-GPU part (scripts/gpu_check_multi.sh)"
  MODEL="$MODEL" STEPS="$STEPS" PYTHON="$PY" bash "$HERE/gpu_check_multi.sh" "$OUT/multi" || \
    echo "gpu_check_multi.sh failed (exit $?)" >&2
fi

step "results"
"$PY" "$HERE/gpu_check.py" table "$OUT" | tee "$OUT/table.md"
if [[ -f "$OUT/multi/table.md" ]]; then
  echo; cat "$OUT/multi/table.md"
fi
