#!/usr/bin/env bash
# Property-based API test: schemathesis reads /api/schema/ from a running
# `palisade serve` and checks that the server does what the document says
# (`--checks all`), once as a regular user and once as staff. Any failure
# fails the script.
#
# The server is the debug binary (`cargo build -p palisade`) on a fresh
# SQLite database in a temporary folder, answering chat through a tiny fake
# OpenAI-compatible model server started here, so the stream endpoint runs
# its whole path and each answer ends at once (the run cannot hang on it).
#
# Excluded: `POST /api-auth/logout/`, which revokes the token the run
# authenticates with (every later request would be 401); it is covered by
# crates/palisade-server/tests/login.rs.
#
# Environment:
#   CARGO_TARGET_DIR                 where the binary is built (default ./target)
#   PALISADE_SCHEMATHESIS_EXAMPLES   examples per operation and phase (default 25)
#   PALISADE_SCHEMATHESIS_SEED       a seed, to replay a run (default: random,
#                                    printed by schemathesis)
#   PALISADE_SCHEMATHESIS_VENV       the cached virtualenv (default
#                                    /var/tmp/palisade-schemathesis)
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION="4.32.5"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/debug/palisade"
VENV="${PALISADE_SCHEMATHESIS_VENV:-/var/tmp/palisade-schemathesis}"
EXAMPLES="${PALISADE_SCHEMATHESIS_EXAMPLES:-25}"

started=$SECONDS

cargo build -p palisade --locked

# One virtualenv, reused by later runs; rebuilt when the pinned version
# changes.
if [[ "$("$VENV/bin/st" --version 2>/dev/null || true)" != *"$ST_VERSION"* ]]; then
    echo "Installing schemathesis $ST_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The fake model server: every chat completion streams "Hello from the
# fake model." and a usage chunk, then [DONE].
cat >"$work/fake_llm.py" <<'PY'
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello from "}}]},
            {"choices": [{"index": 0, "delta": {"content": "the fake model."}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}},
        ]
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
llm_port="$(free_port)"
python3 "$work/fake_llm.py" "$llm_port" &
pids+=("$!")

export PALISADE_DATA_DIR="$work/data"
export PALISADE_LLM_PROVIDER=openai
export PALISADE_LLM_BASE_URL="http://127.0.0.1:$llm_port/v1"
export PALISADE_LLM_MODEL=fake
export PALISADE_LOG_FORMAT=text
export RUST_LOG="${RUST_LOG:-warn}"

"$BIN" migrate 2>/dev/null
"$BIN" user create alice --full-name "Alice Example" --email alice@example.test 2>/dev/null
"$BIN" user create root --full-name "Staff Example" --staff 2>/dev/null
user_token="$("$BIN" token create alice)"
staff_token="$("$BIN" token create root)"

port="$(free_port)"
export PALISADE_BIND="127.0.0.1:$port"
"$BIN" serve >"$work/serve.log" 2>&1 &
pids+=("$!")
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    if curl -fsS "$base/readyz" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null || {
    echo "palisade did not start:" >&2
    cat "$work/serve.log" >&2
    exit 1
}

seed_args=()
if [[ -n "${PALISADE_SCHEMATHESIS_SEED:-}" ]]; then
    seed_args=(--seed "$PALISADE_SCHEMATHESIS_SEED")
fi

status=0
for who in user staff; do
    if [[ "$who" == user ]]; then token="$user_token"; else token="$staff_token"; fi
    echo "== schemathesis as $who (at most $EXAMPLES examples per operation)"
    # From the temporary folder, so schemathesis's example cache
    # (.schemathesis/) does not land in the repository.
    (cd "$work" && "$VENV/bin/st" run "$base/api/schema/" \
        --checks all \
        --header "Authorization: Token $token" \
        --max-examples "$EXAMPLES" \
        --exclude-path /api-auth/logout/ \
        --request-timeout 30 \
        --no-color \
        "${seed_args[@]}") || status=1
done

if [[ $status -ne 0 ]]; then
    echo "schemathesis found failures; the server log:" >&2
    tail -n 50 "$work/serve.log" >&2
fi
echo "schemathesis took $((SECONDS - started)) s"
exit $status
