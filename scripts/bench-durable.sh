#!/usr/bin/env bash
# Durable-answer benchmark: database statements per running answer, how far
# a follower on another node trails the direct client, and many slow answers
# on one node. Runs the release binary against an OpenAI-compatible upstream
# inside crates/palisade/examples/durable_bench.rs. Prints markdown for
# docs/benchmarks.md ("Durable answers"); the servers' logs go to
# $TMPDIR/palisade-durable-bench-logs.
#
# Usage:
#   scripts/bench-durable.sh [sqlite|postgres|both] [durable_bench flags…]
#       e.g. scripts/bench-durable.sh postgres --phases lag --lag-answers 20
#       PostgreSQL: a database of its own, $PALISADE_BENCH_DB (default
#       palisade_bench) on $PALISADE_BENCH_PG_HOST:$PALISADE_BENCH_PG_PORT
#       (127.0.0.1:5432) as $PALISADE_BENCH_PG_USER (postgres), created
#       here and dropped afterwards.
#   scripts/bench-durable.sh stream-compare OLD_PALISADE_BINARY [ROUNDS]
#       the stream benchmark of scripts/bench-stream.sh (this tree's
#       stream_bench, 1,000 open streams) against this tree's binary and
#       against OLD_PALISADE_BINARY (an older commit's release build, e.g.
#       from a git worktree), alternating, ROUNDS (default 5) each; prints
#       every run's rows and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each open stream holds a client and an upstream connection on both sides.
ulimit -n "$(ulimit -Hn)"
target="${CARGO_TARGET_DIR:-target}"

if [[ "${1:-}" == stream-compare ]]; then
    old_bin="${2:?usage: scripts/bench-durable.sh stream-compare OLD_PALISADE_BINARY [ROUNDS]}"
    rounds="${3:-5}"
    cargo build --release -p palisade --bin palisade --example stream_bench >&2
    out=$(mktemp -d)
    for round in $(seq 1 "$rounds"); do
        for side in new old; do
            if [[ $side == new ]]; then bin="$target/release/palisade"; else bin="$old_bin"; fi
            "$target/release/examples/stream_bench" "$bin" --streams 1000 >"$out/$side-$round.md"
            echo "round $round $side: $(grep -c '^|' "$out/$side-$round.md") rows" >&2
        done
    done
    echo "| tree | run | baseline p50 | baseline p99 | through Palisade p50 | p99 | max | added at p50 | KiB per open stream | 1,000 opened in |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for side in new old; do
        for round in $(seq 1 "$rounds"); do
            f="$out/$side-$round.md"
            awk -F'|' -v side="$side" -v run="$round" '
                /baseline/ {bp50=$4; bp99=$5}
                /Palisade → client/ {p50=$4; p99=$5; mx=$6}
                /adds ≈/ {match($0, /≈ [0-9]+ µs/); added=substr($0, RSTART+2, RLENGTH-2)}
                /open streams/ {match($0, /≈ [0-9.]+ KiB/); kib=substr($0, RSTART+2, RLENGTH-6);
                                match($0, /opened in [0-9.]+ s/); opened=substr($0, RSTART+10, RLENGTH-10)}
                END {printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", side, run, bp50, bp99, p50, p99, mx, added, kib, opened}
            ' "$f"
        done
    done | sed 's/  */ /g'
    echo
    echo "Medians over the runs (µs; KiB):"
    for side in new old; do
        for field in "baseline p50:4:baseline" "baseline p99:5:baseline" "p50:4:Palisade → client" "p99:5:Palisade → client"; do
            IFS=: read -r name col pattern <<<"$field"
            values=$(for f in "$out"/$side-*.md; do
                grep "$pattern" "$f" | head -1 | awk -F'|' -v c="$col" '{gsub(/[^0-9]/, "", $c); print $c}'
            done | sort -n)
            n=$(echo "$values" | wc -l)
            echo "$side $name: $(echo "$values" | sed -n "$(((n + 1) / 2))p")"
        done
        values=$(cat "$out"/$side-*.md | grep -o '≈ [0-9.]* KiB' | awk '{print $2}' | sort -n)
        n=$(echo "$values" | wc -l)
        echo "$side KiB per open stream: $(echo "$values" | sed -n "$(((n + 1) / 2))p")"
    done
    echo "(raw outputs in $out)" >&2
    exit 0
fi

backend="${1:-both}"
shift || true
cargo build --release -p palisade --bin palisade --example durable_bench >&2
bench="$target/release/examples/durable_bench"
binary="$target/release/palisade"

run_sqlite() {
    command -v sqlite3 >/dev/null || { echo "sqlite3 (the shell) is needed" >&2; exit 1; }
    echo "### SQLite"
    "$bench" "$binary" --backend sqlite "$@"
}

run_postgres() {
    local host="${PALISADE_BENCH_PG_HOST:-127.0.0.1}" port="${PALISADE_BENCH_PG_PORT:-5432}"
    local user="${PALISADE_BENCH_PG_USER:-postgres}" db="${PALISADE_BENCH_DB:-palisade_bench}"
    command -v psql >/dev/null || { echo "psql is needed" >&2; exit 1; }
    createdb -h "$host" -p "$port" -U "$user" "$db"
    trap 'dropdb -h "'"$host"'" -p "'"$port"'" -U "'"$user"'" --if-exists "'"$db"'"' EXIT
    echo "### PostgreSQL"
    psql -X -A -t -h "$host" -p "$port" -U "$user" -d "$db" -c "SELECT version()" >&2
    "$bench" "$binary" --backend postgres --pg-url "postgres://$user@$host:$port/$db" "$@"
}

case "$backend" in
    sqlite) run_sqlite "$@" ;;
    postgres) run_postgres "$@" ;;
    both) run_sqlite "$@"; run_postgres "$@" ;;
    *) echo "usage: scripts/bench-durable.sh [sqlite|postgres|both|stream-compare] …" >&2; exit 2 ;;
esac
