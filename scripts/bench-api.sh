#!/usr/bin/env bash
# API benchmark: seeds 100 users (one, `heavy`, with 10,000 threads and
# 100,000 messages), serves them with the release binary, and loads the read
# endpoints with wrk at 64 connections, beside /healthz (no database) as the
# ceiling. Prints a markdown table per backend for docs/benchmarks.md.
#
# Usage: scripts/bench-api.sh [sqlite|postgres|all] (default all)
# Needs: wrk (installed with apt-get when missing), and for postgres a local
# server at 127.0.0.1:5432 with trust auth (PALISADE_BENCH_POSTGRES_ADMIN_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

which_backends="${1:-all}"
duration="${BENCH_DURATION:-10s}"
connections="${BENCH_CONNECTIONS:-64}"
port=18181
admin_url="${PALISADE_BENCH_POSTGRES_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -p palisade -p palisade-store --example seed --bin palisade >&2
bin=target/release/palisade
seed=target/release/examples/seed

run_wrk() { # name path
    local out
    out="$(wrk -t2 -c"$connections" -d"$duration" --latency \
        -H "Authorization: Token $token" "http://127.0.0.1:$port$2")"
    local rps p50 p99
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    if grep -q "Non-2xx" <<<"$out"; then
        echo "warning: non-2xx responses for $1" >&2
    fi
    printf '| %s | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99"
}

bench() { # backend url
    local backend="$1" url="$2"
    echo "seeding $backend…" >&2
    local started=$SECONDS
    "$seed" "$url" >&2
    echo "seeded in $((SECONDS - started)) s" >&2
    # Planner statistics and the visibility map, as autovacuum would have
    # them by now on a database that has been running for a while.
    case "$url" in postgres*) psql -q "$url" -c "VACUUM ANALYZE" >&2 ;; esac
    token="$("$bin" --database-url "$url" token create heavy)"
    "$bin" --database-url "$url" serve --bind "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 50); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.2
    done
    local thread
    thread="$(curl -fs -H "Authorization: Token $token" \
        "http://127.0.0.1:$port/api/chat-threads/?page_size=1&field=uuid" | sed -E 's/.*"uuid":"([0-9a-f]+)".*/\1/')"

    echo
    echo "### $backend ($connections connections, $duration per row, wrk -t2)"
    echo
    echo "| endpoint | requests/s | p50 | p99 |"
    echo "|---|---|---|---|"
    run_wrk "GET /healthz (ceiling, no DB)" "/healthz"
    run_wrk "GET /api/chat-threads/" "/api/chat-threads/"
    run_wrk "GET /api/chat-threads/?query=quotas" "/api/chat-threads/?query=quotas"
    run_wrk "GET /api/chat-threads/?is_flagged=true" "/api/chat-threads/?is_flagged=true"
    run_wrk "GET /api/chat-threads/{uuid}/" "/api/chat-threads/$thread/"
    run_wrk "GET /api/chat-messages/?thread={uuid}" "/api/chat-messages/?thread=$thread"
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

if [ "$which_backends" = all ] || [ "$which_backends" = sqlite ]; then
    bench sqlite "sqlite://$work/bench.db"
fi
if [ "$which_backends" = all ] || [ "$which_backends" = postgres ]; then
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS palisade_bench" >&2
    psql -q "$admin_url" -c "CREATE DATABASE palisade_bench" >&2
    bench postgres "${admin_url%/*}/palisade_bench"
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS palisade_bench" >&2
fi
