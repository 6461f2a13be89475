#!/usr/bin/env bash
# The load and fault campaign (crates/campaign), full size, on loopback only: 1,000 concurrent
# connections for 60 s mixing allowed and blocked uploads (1 KiB – 10 MiB, HTTP/1.1 and HTTP/2
# in intercepted tunnels) through `labelgate serve` on the shipped config, against an origin
# that checks every byte; slow attackers on request heads, TLS handshakes and bodies; origins
# that reset, stall, answer garbage or close mid-response; the spool held by stalled uploads;
# two SIGHUP reloads; a SIGTERM drain under load. Then the peak RSS of 300 concurrent 10 MiB
# uploads (plain HTTP/1.1, hold mode, shipped config). Release builds; the CI runs a slice
# (crates/cli/tests/campaign.rs).
#
#   benches/campaign/run.sh [CONNECTIONS] [SECONDS]     # default 1000 60
#   ONLY=rss benches/campaign/run.sh                     # the RSS measurement alone
#
# Prints the JSON reports; exits 1 when an invariant broke.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CONNS=${1:-1000}
SECS=${2:-60}
W=$(mktemp -d /tmp/labelgate-campaign.XXXXXX)
trap 'rm -rf "$W"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(cd "$ROOT" && cargo build --release -q -p labelgate -p labelgate-campaign)
LG="$ROOT/target/release/labelgate"
CAMPAIGN="$ROOT/target/release/labelgate-campaign"
status=0
if [ "${ONLY:-}" != "rss" ]; then
  echo "== campaign: $CONNS connections, $SECS s, hold mode"
  "$CAMPAIGN" run "$LG" "$W/run-hold" "$CONNS" "$SECS" hold || status=1
  echo "== campaign: $CONNS connections, $SECS s, stream mode"
  "$CAMPAIGN" run "$LG" "$W/run-stream" "$CONNS" "$SECS" stream || status=1
fi
echo "== peak RSS: 300 concurrent 10 MiB uploads, plain HTTP/1.1, hold mode, shipped config"
"$CAMPAIGN" rss "$LG" "$W/rss" 300 10 hold || status=1
exit $status
