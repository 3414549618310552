#!/usr/bin/env bash
# The main job, small enough for a few minutes on 2 CPU cores: fine-tune MiniLM on part of
# CoNLL-2003, evaluate on the test set, compress (distil to 3 layers, 4-bit), evaluate again.
set -euo pipefail
cd "$(dirname "$0")/.."
OT=.venv/bin/occamtune
$OT train --config configs/quick-ner.yaml --overwrite
$OT evaluate runs/quick-ner --split test
$OT compress runs/quick-ner --pipeline "vocab(), quantize(bits=4)" --output runs/quick-ner-small --overwrite
$OT evaluate runs/quick-ner-small --split test
$OT predict runs/quick-ner-small "Angela Merkel met Emmanuel Macron in Paris on Tuesday ."
du -b runs/quick-ner/model.safetensors runs/quick-ner-small/model.occ
