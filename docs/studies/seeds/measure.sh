#!/usr/bin/env bash
# Base vs tuned on held-out data for one seed example (docs/seeds.md, "Base vs tuned").
# Usage (from the repository root, tunesmith installed):
#   bash docs/studies/seeds/measure.sh emotional_support|multi_turn|medical_reasoning|pretrain_text [key=value ...]
# Extra key=value arguments go to train and to every measurement (e.g. learning_rate=1e-3).
# Writes saves/seeds/<example>/{tuned,base-*,tuned-*} and copies the small result files
# (eval_results.json, predict_results.json, generated_predictions.jsonl, chat answers,
# all_results.json, trainer_log.jsonl, training_loss.png) into docs/studies/seeds/<example>/.
set -euo pipefail
example=$1; shift
TS=${TS:-tunesmith}
out=saves/seeds/$example
docs=docs/studies/seeds/$example
cfg=examples/$example.yaml
mkdir -p "$out" "$docs"
# The held-out data: a seeded validation split the training never sees (pretrain_text ships
# val_size: 0.15 itself), or a separate file of questions (medical reasoning).
case $example in
  emotional_support) held=(val_size=0.15) ;;
  multi_turn)        held=(val_size=0.2) ;;
  pretrain_text)     held=() ;;
  medical_reasoning) held=(eval_dataset=medical_reasoning_heldout) ;;
  *) echo "unknown example $example" >&2; exit 2 ;;
esac
train_held=("${held[@]}")
[ "$example" = medical_reasoning ] && train_held=()   # its held-out questions are another file
$TS train "$cfg" "${train_held[@]}" "$@" output_dir="$out/tuned" save_strategy=no
tuned=(adapter_name_or_path="$out/tuned")
if [ "$example" = medical_reasoning ]; then
  # Does the answer keep <think>reasoning</think>answer? (plus BLEU/ROUGE against the reference)
  for who in base tuned; do
    extra=(); [ $who = tuned ] && extra=("${tuned[@]}")
    $TS predict "$cfg" "${held[@]}" "$@" "${extra[@]}" metrics=think_format,bleu,rouge \
      max_new_tokens=384 output_dir="$out/$who-predict" --no-progress
    cp "$out/$who-predict/predict_results.json" "$out/$who-predict/generated_predictions.jsonl" \
      "$docs/" 2>/dev/null || true
    mv "$docs/predict_results.json" "$docs/$who-predict_results.json"
    mv "$docs/generated_predictions.jsonl" "$docs/$who-generated_predictions.jsonl"
  done
fi
for who in base tuned; do
  extra=(); [ $who = tuned ] && extra=("${tuned[@]}")
  $TS eval "$cfg" "${held[@]}" "$@" "${extra[@]}" output_dir="$out/$who-eval"
  cp "$out/$who-eval/eval_results.json" "$docs/$who-eval_results.json"
done
if [ -f "docs/studies/seeds/$example.prompts" ]; then
  $TS chat "$cfg" "$@" "${tuned[@]}" --compare --no-stream max_new_tokens=120 \
    < "docs/studies/seeds/$example.prompts" > "$docs/chat_compare.txt"
fi
cp "$out/tuned/all_results.json" "$out/tuned/trainer_log.jsonl" "$docs/"
cp "$out/tuned/training_loss.png" "$docs/" 2>/dev/null || true
