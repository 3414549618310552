#!/usr/bin/env bash
# The main job, small enough for a few minutes on 2 CPU cores: fine-tune MiniLM on part of
# CoNLL-2003, evaluate on the test set, compress (vocabulary trim, 4-bit), evaluate again, export
# to ONNX Runtime int8 and evaluate that, then a short shrink search (its first trial prunes 50%
# of the weights and fine-tunes briefly; the others need no training) and its report.
# Each stage says what it does and how long it took in the last run on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OT=.venv/bin/occamtune
STAGES=8
TIMES=runs/.main_job_seconds  # each stage's time in the last run on this machine
mkdir -p runs
n=0
started=$SECONDS
stage() {  # stage "what": ends the previous stage's clock, says what comes and how long it took
  [ "$n" -gt 0 ] && echo "$n $((SECONDS - started))" >> "$TIMES.new"
  n=$((n + 1))
  started=$SECONDS
  local last load
  last=$(awk -v s="$n" '$1 == s {print $2}' "$TIMES" 2>/dev/null | tail -1)
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
  echo "== [$n/$STAGES] $1${last:+ (last run here: ${last} s; load now $load on $(nproc) cores)} ==" >&2
}
finish() { echo "$n $((SECONDS - started))" >> "$TIMES.new"; mv "$TIMES.new" "$TIMES"; }
rm -f "$TIMES.new"
stage "fine-tune MiniLM on part of CoNLL-2003 (configs/quick-ner.yaml)"
$OT train --config configs/quick-ner.yaml --overwrite
stage "evaluate on the test set"
$OT evaluate runs/quick-ner --split test
stage "compress: vocabulary trim + 4-bit, then evaluate"
$OT compress runs/quick-ner --pipeline "vocab(), quantize(bits=4)" --output runs/quick-ner-small --overwrite
$OT evaluate runs/quick-ner-small --split test
stage "predict with the compressed model"
$OT predict runs/quick-ner-small "Angela Merkel met Emmanuel Macron in Paris on Tuesday ."
stage "export to ONNX Runtime int8, then evaluate"
$OT export runs/quick-ner --output runs/quick-ner-onnx --overwrite
$OT evaluate runs/quick-ner-onnx --split test
stage "sizes on disk (fp32 safetensors, packed artifact)"
du -b runs/quick-ner/model.safetensors runs/quick-ner-small/model.occ
stage "shrink: a 4-trial search for the smallest model within 2 F1"
rm -rf runs/quick-ner-shrink
$OT shrink runs/quick-ner --output runs/quick-ner-shrink --trials 4 --max-drop 2 --quiet \
    --space distill_layers=0 ffn=0.0 sparsity=0.0,0.5 lowrank_energy=0.0 bits=8,4
stage "the search's report"
$OT report runs/quick-ner-shrink
finish
