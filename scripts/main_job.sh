#!/usr/bin/env bash
# The main job, small enough for a few minutes on 2 CPU cores: fine-tune MiniLM on part of
# CoNLL-2003, evaluate on the test set, compress (vocabulary trim, 4-bit), evaluate again, export
# to ONNX Runtime int8 and evaluate that, then a
# short shrink search (its first trial prunes 50% of the weights and fine-tunes briefly; the
# others need no training) and its report.
set -euo pipefail
cd "$(dirname "$0")/.."
OT=.venv/bin/occamtune
$OT train --config configs/quick-ner.yaml --overwrite
$OT evaluate runs/quick-ner --split test
$OT compress runs/quick-ner --pipeline "vocab(), quantize(bits=4)" --output runs/quick-ner-small --overwrite
$OT evaluate runs/quick-ner-small --split test
$OT predict runs/quick-ner-small "Angela Merkel met Emmanuel Macron in Paris on Tuesday ."
$OT export runs/quick-ner --output runs/quick-ner-onnx --overwrite   # ONNX Runtime int8
$OT evaluate runs/quick-ner-onnx --split test
du -b runs/quick-ner/model.safetensors runs/quick-ner-small/model.occ
rm -rf runs/quick-ner-shrink
$OT shrink runs/quick-ner --output runs/quick-ner-shrink --trials 4 --max-drop 2 --quiet \
    --space distill_layers=0 ffn=0.0 sparsity=0.0,0.5 lowrank_energy=0.0 bits=8,4
$OT report runs/quick-ner-shrink
