#!/usr/bin/env bash
# Regenerates crates/onnx/src/proto/onnx.rs (the protobuf types of ONNX) from the vendored
# crates/onnx/proto/onnx.proto, with prost-build; protox parses the .proto, so no protoc is
# needed. To move to a newer ONNX: replace crates/onnx/proto/onnx.proto with the release's
# onnx/onnx.proto (proto2 syntax) and run
#   ONNX_VERSION=1.x.y scripts/regen-onnx-proto.sh
# then `cargo test -p lalarand-onnx`. The generator is its own workspace (scripts/onnx-proto),
# built in its own target folder, so the project's build never compiles prost-build.
set -euo pipefail
cd "$(dirname "$0")/onnx-proto"
cargo run --quiet --release
cd ../..
git diff --stat -- crates/onnx/src/proto/onnx.rs
