#!/usr/bin/env bash
# The GPU device check (docs/device-check.md), on the device machine, after the pieces of
# scripts/device/pack.sh were carried there: loads onnxruntime-gpu with CUDA 13 from python3's
# PyTorch, then checks gpu stages against the whole model, profiles zoo models in every mode,
# runs the demo on gpu + cpu and the schedulability sweep on the profiles measured there.
# Results go to $OUT: check.log (the summary), device.txt, logs.tar.gz (one log per step) and
# results.tar.gz (profiles, demo folder, sweep); at most 8 files come back from a run.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/device-out}
logs=/tmp/device-logs
mkdir -p "$OUT" "$logs"
log() { echo "== $*" | tee -a "$OUT/check.log"; }
step() {
    local name=$1 t0=$SECONDS rc
    shift
    log "$name: $*"
    "$@" >"$logs/$name.log" 2>&1
    rc=$?
    log "$name: rc=$rc in $((SECONDS - t0)) s; last lines:"
    tail -n 5 "$logs/$name.log" | sed 's/^/    /' | tee -a "$OUT/check.log"
}

bin=.device/bin
export XDG_CACHE_HOME=/tmp/lalarand-cache
lib=$XDG_CACHE_HOME/lalarand/onnxruntime-1.31.1-gpu
mkdir -p "$lib"
cat .device/ort-gpu.part-* > /tmp/ort-gpu.tar.xz
if [ "$(sha256sum /tmp/ort-gpu.tar.xz | cut -d' ' -f1)" != "$(cat $bin/ort-gpu.sha256)" ]; then
    log "the carried pieces do not reassemble (sha256 differs): carry every .device/ort-gpu.part-* first"
    ls -la .device | tee -a "$OUT/check.log"
    exit 2
fi
python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' /tmp/ort-gpu.tar.xz \
    | tar -C "$lib" -xf -
# CUDA 13 runtime, cuBLAS, cuRAND and cuDNN 9 ship with python3's PyTorch (its nvidia packages).
nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))')/nvidia
export LD_LIBRARY_PATH=$(find "$nv" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
chmod +x $bin/*
{ nvidia-smi -L; nproc; uname -r; } > "$OUT/device.txt" 2>&1
log "device: $(head -1 "$OUT/device.txt")"

# 1. gpu stages in sequence against the whole model on the CPU.
# (only the gpu test: the others read files by this checkout's absolute path)
step stages $bin/stages_match_whole gpu_stages_match_the_whole_model --ignored --nocapture --test-threads 1
# 2. Zoo models, profiled in every mode (cpu modes pinned to core 2, gpu stages driven from it).
mkdir -p /tmp/m
for a in squeezenet1_1 mobilenet_v2 resnet18 resnet50 yolov3_tiny; do
    $bin/lalarand zoo "$a" --seed 1 --out "/tmp/m/$a.onnx" >>"$logs/zoo.log" 2>&1
    step "profile-$a" $bin/lalarand profile "/tmp/m/$a.onnx" --runs 100 --warmup 10 --cores 2 --threads 1 \
        --margin 1.2 --modes gpu,cpu-fp32,cpu-int8 --out "/tmp/m/$a.json"
done
# 3. The demo on gpu + cpu, 20 s run.
step demo $bin/lalarand demo --out /tmp/demo
# 4. Schedulability on the profiles measured here, one gpu and one cpu core.
printf '[[resource]]\nname = "gpu"\nkind = "gpu"\ndispatch_overhead_us = 120\n\n[[resource]]\nname = "cpu"\nkind = "cpu"\ncores = [2]\ndispatch_overhead_us = 120\n' > /tmp/m/platform.toml
step sweep $bin/lalarand experiment schedulability --profiles /tmp/m/*.json --platform /tmp/m/platform.toml \
    --tasks 4 --sets 100 --utilizations 0.1:2.0:0.1 --out /tmp/sweep
tar -C /tmp -czf "$OUT/results.tar.gz" --exclude='*.onnx' m demo sweep 2>>"$OUT/check.log"
tar -C "$logs" -czf "$OUT/logs.tar.gz" . 2>>"$OUT/check.log"
log "done"
