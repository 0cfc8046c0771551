#!/usr/bin/env bash
# Prepares the GPU device check (docs/device-check.md), here, on a machine with pip and cargo:
# the release `lalarand`, the engine's GPU stage test, and onnxruntime-gpu's libraries, cut into
# pieces that each fit one device run's 64 MiB carry (with the working tree, about 4 MiB). Everything lands in .device/ (git-ignored).
# Prints the carry list, in the order the runs must carry it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ORT_VERSION=1.31.1
PIECE_MIB=${PIECE_MIB:-52}
out=.device
rm -rf "$out" && mkdir -p "$out/bin" "$out/fetch"

# 1. Binaries (the device machine has no Rust toolchain and no registry).
cargo build --release -p lalarand-cli
cp target/release/lalarand "$out/bin/"
test_bin=$(cargo test --release -p lalarand-engine --test stages_match_whole --no-run --message-format=json \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "stages_match_whole" and m.get("executable"):
        print(m["executable"])')
cp "$test_bin" "$out/bin/stages_match_whole"
strip "$out/bin/"* 2>/dev/null || true

# 2. The CUDA 13 build of ONNX Runtime: only the libraries lalarand loads.
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d "$out/fetch" "onnxruntime-gpu==$ORT_VERSION"
wheel=$(ls "$out"/fetch/onnxruntime_gpu-"$ORT_VERSION"-*.whl)
python3 - "$wheel" "$out/fetch/lib" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("onnxruntime/capi/lib") and ".so" in base and "tensorrt" not in base:
            with open(os.path.join(dest, base), "wb") as f:
                f.write(z.read(n))
PY
# xz: 195 MB from 314 MB (gzip leaves 242 MB, one piece more), and python3's lzma reads it
# where the device lacks the xz tool.
tar -C "$out/fetch/lib" -cf - . | xz -T0 -6 > "$out/ort-gpu.tar.xz"
sha256sum "$out/ort-gpu.tar.xz" | cut -d' ' -f1 > "$out/bin/ort-gpu.sha256"
split -b "${PIECE_MIB}M" -d -a 2 "$out/ort-gpu.tar.xz" "$out/ort-gpu.part-"
rm -rf "$out/fetch" "$out/ort-gpu.tar.xz"

echo "carry, one per run, in this order, then run scripts/device/check.sh carrying .device/bin:"
for p in "$out"/ort-gpu.part-*; do echo "  $p ($(du -m "$p" | cut -f1) MiB)"; done
echo "  $out/bin ($(du -sm "$out/bin" | cut -f1) MiB)"
