#!/usr/bin/env bash
# Metrics overhead: the thread list (10,000 threads of one user, SQLite) and
# /healthz loaded with wrk at 64 connections, by the release binary as it is
# and by the same source built without the metrics middleware (a copy of
# the tree with that one layer taken out of `app()`), in alternating rounds
# on one seeded database. Prints a markdown table for docs/benchmarks.md.
#
# Usage: scripts/bench-metrics.sh [ROUNDS] (default 3)
# Needs: wrk (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-3}"
duration="${BENCH_DURATION:-10s}"
connections="${BENCH_CONNECTIONS:-64}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
port=18182
work="$(mktemp -d)"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    git worktree remove --force "$work/without" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -p palisade -p palisade-store --example seed --bin palisade >&2
cp "$target/release/palisade" "$work/with-metrics"

# The same tree without the metrics layer.
git worktree add --detach "$work/without" HEAD >&2
git diff HEAD | (cd "$work/without" && git apply --allow-empty) >&2
# Both lines of it: where it is made and where it is applied.
layer='        .layer(metrics_layer)'
made='    let metrics_layer = '
grep -qF "$layer" "$work/without/crates/palisade-server/src/lib.rs"
grep -qF "$made" "$work/without/crates/palisade-server/src/lib.rs"
grep -vF -e "$layer" -e "$made" "$work/without/crates/palisade-server/src/lib.rs" >"$work/lib.rs"
cp "$work/lib.rs" "$work/without/crates/palisade-server/src/lib.rs"
(cd "$work/without" && cargo build --release -p palisade --bin palisade >&2)
cp "$target/release/palisade" "$work/without-metrics"
# Put the binary of this tree back where cargo expects it.
cargo build --release -p palisade --bin palisade >&2

url="sqlite://$work/bench.db"
"$target/release/examples/seed" "$url" >&2
token="$("$work/with-metrics" --database-url "$url" token create heavy)"

run() { # binary path
    PALISADE_CHAT_ENABLED=false "$1" --database-url "$url" serve --bind "127.0.0.1:$port" \
        >"$work/serve.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.1
    done
    wrk -t2 -c"$connections" -d"$duration" --latency \
        -H "Authorization: Token $token" "http://127.0.0.1:$port$2" |
        awk '/Requests\/sec/ {rps=$2} $1 == "99%" {p99=$2} END {printf "%s %s\n", rps, p99}'
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

echo
echo "| round | binary | GET /api/chat-threads/ req/s | p99 | GET /healthz req/s | p99 |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
    for binary in with-metrics without-metrics; do
        read -r list_rps list_p99 < <(run "$work/$binary" "/api/chat-threads/")
        read -r health_rps health_p99 < <(run "$work/$binary" "/healthz")
        echo "| $round | $binary | $list_rps | $list_p99 | $health_rps | $health_p99 |"
    done
done
