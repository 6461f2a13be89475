#!/usr/bin/env bash
# Split uploads, end to end: labelgate's CPU (from /proc) for a file sent as one PUT and as
# Content-Range fragments of one upload session, through `labelgate serve` (release, plain HTTP
# proxy, shipped config) to the pieces test origin. Target: fragments ≤ 1.1× the CPU of one
# request.
#
# Usage: benches/pieces/run.sh [SIZE_BYTES] [FRAGMENT_BYTES] [ROUNDS]   (default 100 MiB, 320 KiB, 3)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
size="${1:-104857600}"; fragment="${2:-327680}"; rounds="${3:-3}"
py="$("$root/scripts/python.sh")"
corpus="${LABELGATE_CORPUS:-$("$root/scripts/corpus.sh")}"  # ../shared/corpus, or a fetched cache
work="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release -q -p labelgate --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/labelgate"
"$py" "$root/crates/cli/tests/pieces_peer.py" pad "$corpus/files/unl_gc_pco-summary-word.docx" "$work/file.docx" "$size"
"$py" "$root/crates/cli/tests/pieces_peer.py" origin "$work" > "$work/origin.port" &
# The shipped config, its built-in refusal of loopback destinations opened for the test origin.
sed -e 's|^allow_destinations = \[\]|allow_destinations = ["127.0.0.0/8"]|' "$root/config/labelgate.toml" > "$work/labelgate.toml"
"$bin" serve --config "$work/labelgate.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --state-dir "$work/state" > "$work/audit.log" 2> "$work/serve.err" &
serve=$!
for _ in $(seq 100); do grep -q "proxy listening" "$work/serve.err" 2>/dev/null && [ -s "$work/origin.port" ] && break; sleep 0.1; done
proxy="$(sed -n 's/.*proxy listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/serve.err")"
origin="$(cat "$work/origin.port")"
ticks() { awk '{print $14 + $15}' "/proc/$serve/stat"; }
hz="$(getconf CLK_TCK)"
echo "file $(stat -c %s "$work/file.docx") bytes, fragments of $fragment bytes, $rounds rounds"
for round in $(seq "$rounds"); do
  for mode in whole pieces separate; do
    before="$(ticks)"
    out="$("$py" "$root/benches/pieces/drive.py" "$proxy" "$origin" "$work/file.docx" "$fragment" "$mode")"
    after="$(ticks)"
    echo "round $round $mode: labelgate CPU $(( (after - before) * 1000 / hz )) ms; $out"
  done
done
echo "session records (inspect_us of the completing request, pieces, bytes):"
grep '"session"' "$work/audit.log" | "$py" -c 'import sys, json
for l in sys.stdin:
    r = json.loads(l); print(" ", r["action"], r["inspect_us"], "us", r["session"])'
