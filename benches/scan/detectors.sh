#!/usr/bin/env bash
# labelgate scan with the content detectors on, beside the same scan reading labels only: the
# corpus copied COPIES times (default 100) into a tree, each file's own labels read
# ([scan] files_inside = false) and, in the second configuration, its text too, counted by the
# four built-in detectors (one at-rest rule names them all). The page cache is warmed first;
# each configuration is measured RUNS times (default 3) and the median reported as files/s,
# MB/s of files and MB/s of text (the text the detectors read, summed from the JSON output).
# Writes the table to target/scan-bench/detectors.txt.
#
# Usage: benches/scan/detectors.sh [COPIES] [RUNS]     (JOBS=2 SCAN_BENCH_DIR=target/scan-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
COPIES="${1:-100}"
RUNS="${2:-3}"
JOBS="${JOBS:-2}"
. benches/scan/common.sh

LABELS="$WORK/labels-only.toml"
printf '[policy]\ndefault_action = "allow"\n[scan]\nfiles_inside = false\n' > "$LABELS"
DETECT="$WORK/detectors.toml"
printf '[policy]\ndefault_action = "allow"\n[[policy.rules]]\nname = "sensitive"\naction = "allow"\ndirection = "at_rest"\ndetectors = ["payment_card", "iban", "us_ssn", "email_address"]\n[scan]\nfiles_inside = false\n' > "$DETECT"

scan() { "$BIN" --config "$1" scan --format json --jobs "$JOBS" --state-dir "$WORK/state-none" "$TREE"; }
seconds() {
  local t0 t1 rc=0
  t0=$(date +%s.%N); scan "$1" > "$WORK/last.json" 2>"$WORK/last.err" || rc=$?; t1=$(date +%s.%N)
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then echo "benches/scan/detectors.sh: scan failed ($rc)" >&2; cat "$WORK/last.err" >&2; exit 1; fi
  awk "BEGIN {print $t1 - $t0}"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
find "$TREE" -type f -print0 | xargs -0 cat > /dev/null
labels=(); detect=()
for r in $(seq 1 "$RUNS"); do
  labels+=("$(seconds "$LABELS")")
  detect+=("$(seconds "$DETECT")")
done
TEXT=$(python3 -c 'import json,sys; print(sum(json.loads(l).get("text", {}).get("bytes", 0) for l in open(sys.argv[1])))' "$WORK/last.json")
L=$(printf '%s\n' "${labels[@]}" | median); D=$(printf '%s\n' "${detect[@]}" | median)
{
  echo "tree: $FILES files, $BYTES bytes ($COPIES copies of the corpus), $TEXT bytes of text, jobs $JOBS, $(nproc) cores, median of $RUNS, warm cache"
  printf '%-40s %9s %10s %12s %12s\n' "" "seconds" "files/s" "MB/s files" "MB/s text"
  printf '%-40s %9.2f %10.0f %12.1f %12s\n' "labels only" "$L" "$(awk "BEGIN {print $FILES / $L}")" "$(awk "BEGIN {print $BYTES / 1e6 / $L}")" "-"
  printf '%-40s %9.2f %10.0f %12.1f %12.1f\n' "labels + text + 4 built-in detectors" "$D" "$(awk "BEGIN {print $FILES / $D}")" "$(awk "BEGIN {print $BYTES / 1e6 / $D}")" "$(awk "BEGIN {print $TEXT / 1e6 / $D}")"
  echo "runs: labels only ${labels[*]}; detectors ${detect[*]}"
} | tee "$WORK/detectors.txt"
