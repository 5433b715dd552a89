#!/usr/bin/env bash
# Stream benchmark: the time Palisade adds between an upstream token and its
# NDJSON line, and the server's memory per open stream with 1,000 streams
# held open at once. Runs the release binary on SQLite against an
# OpenAI-compatible upstream inside the benchmark process. Prints markdown
# for docs/benchmarks.md.
#
# Usage: scripts/bench-stream.sh [STREAMS] (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
streams="${1:-1000}"
# Each open stream holds a client and an upstream connection on both sides.
ulimit -n "$(ulimit -Hn)"
cargo build --release -p palisade --bin palisade --example stream_bench >&2
target="${CARGO_TARGET_DIR:-target}"
"$target/release/examples/stream_bench" "$target/release/palisade" --streams "$streams"
