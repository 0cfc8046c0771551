#!/usr/bin/env bash
# Profiles the five zoo models at layer and auto granularity with the settings of
# docs/evaluation.md §2b (core 1, one thread, cpu-fp32 and cpu-int8, 30 runs, margin 1.2), for
# the granularity sweep (docs/evaluation.md, "Stages worth their overhead").
#   scripts/bench/granularity_profiles.sh OUT_DIR [lalarand binary]
# Writes OUT_DIR/{layer,auto}/profiles/<model>.json and OUT_DIR/models/<model>.onnx.
set -euo pipefail
out=${1:?usage: $0 OUT_DIR [lalarand binary]}
bin=${2:-target/release/lalarand}
mkdir -p "$out/models"
for m in squeezenet1_1 mobilenet_v2 resnet18 resnet50 yolov3_tiny; do
  "$bin" zoo "$m" --seed 1 --out "$out/models/$m.onnx" >/dev/null
  for g in layer auto; do
    mkdir -p "$out/$g/profiles"
    start=$(date +%s.%N)
    "$bin" profile "$out/models/$m.onnx" --runs 30 --warmup 5 --cores 1 --threads 1 \
        --modes cpu-fp32,cpu-int8 --margin 1.2 --granularity "$g" \
        --out "$out/$g/profiles/$m.json" | grep -E "^granularity|^wrote" || true
    echo "$m $g: $(echo "$(date +%s.%N) - $start" | bc) s"
  done
done
