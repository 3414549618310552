#!/usr/bin/env bash
# The main job, small enough for a few minutes on 2 CPU cores: fine-tune MiniLM on part of
# CoNLL-2003, evaluate on the test set, compress (vocabulary trim, 4-bit), evaluate again, export
# to ONNX Runtime int8 and evaluate that, then a short shrink search (its first trial prunes 50%
# of the weights and fine-tunes briefly; the others need no training) and its report.
# Each stage says what it does and, before the long ones, how long it takes on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OT=.venv/bin/occamtune
STAGES=8
n=0
stage() {  # stage "what" ["minutes on 2 idle cores"]
  n=$((n + 1))
  local load cores
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
  cores=$(nproc 2>/dev/null || echo "?")
  if [ -n "${2:-}" ]; then
    echo "== [$n/$STAGES] $1: about $2 on 2 idle cores (load now $load on $cores cores;" \
         "a busy machine takes longer) ==" >&2
  else
    echo "== [$n/$STAGES] $1 ==" >&2
  fi
}
stage "fine-tune MiniLM on part of CoNLL-2003 (configs/quick-ner.yaml)" "4 minutes"
$OT train --config configs/quick-ner.yaml --overwrite
stage "evaluate on the test set"
$OT evaluate runs/quick-ner --split test
stage "compress: vocabulary trim + 4-bit, then evaluate" "1 minute"
$OT compress runs/quick-ner --pipeline "vocab(), quantize(bits=4)" --output runs/quick-ner-small --overwrite
$OT evaluate runs/quick-ner-small --split test
stage "predict with the compressed model"
$OT predict runs/quick-ner-small "Angela Merkel met Emmanuel Macron in Paris on Tuesday ."
stage "export to ONNX Runtime int8, then evaluate" "1 minute"
$OT export runs/quick-ner --output runs/quick-ner-onnx --overwrite
$OT evaluate runs/quick-ner-onnx --split test
stage "sizes on disk (fp32 safetensors, packed artifact)"
du -b runs/quick-ner/model.safetensors runs/quick-ner-small/model.occ
stage "shrink: a 4-trial search for the smallest model within 2 F1" "3 minutes"
rm -rf runs/quick-ner-shrink
$OT shrink runs/quick-ner --output runs/quick-ner-shrink --trials 4 --max-drop 2 --quiet \
    --space distill_layers=0 ffn=0.0 sparsity=0.0,0.5 lowrank_energy=0.0 bits=8,4
stage "the search's report"
$OT report runs/quick-ner-shrink
