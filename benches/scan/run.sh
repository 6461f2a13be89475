#!/usr/bin/env bash
# labelgate scan beside ExifTool on the same tree, in the same run: the corpus copied COPIES
# times (default 500) into a tree, a labels-only configuration (no at-rest rule), the page cache
# warmed first, each measured RUNS times (default 3) and the median reported:
#   - ExifTool:            exiftool -r -json TREE
#   - labelgate, full:     labelgate scan --format json --jobs JOBS TREE (JOBS default 2)
#   - labelgate, indexed:  the same with --incremental, after one run that fills the index
# Prints a table (files/s, and the two ratios the issue sets targets for: labelgate ÷ ExifTool
# ≥ 100×, full ÷ incremental ≥ 20×) and writes it to target/scan-bench/result.txt.
#
# Usage: benches/scan/run.sh [COPIES] [RUNS]     (JOBS=2 SCAN_BENCH_DIR=target/scan-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
COPIES="${1:-500}"
RUNS="${2:-3}"
JOBS="${JOBS:-2}"
WORK="${SCAN_BENCH_DIR:-target/scan-bench}"

if ! command -v exiftool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libimage-exiftool-perl
fi
CORPUS="$(scripts/corpus.sh)"
cargo build --release -p labelgate --locked -q
BIN="$PWD/target/release/labelgate"

TREE="$WORK/tree-$COPIES"
if [ ! -f "$TREE/.complete" ]; then
  rm -rf "$TREE"
  for i in $(seq 1 "$COPIES"); do
    d="$TREE/share$((i % 10))/copy$i"
    mkdir -p "$d"
    cp "$CORPUS"/files/* "$d"/
  done
  touch "$TREE/.complete"
fi
FILES=$(find "$TREE" -type f ! -name .complete | wc -l)
BYTES=$(du -sb --exclude=.complete "$TREE" | cut -f1)
CONFIG="$WORK/labels-only.toml"
printf '[policy]\ndefault_action = "allow"\n[scan]\nfiles_inside = false\n' > "$CONFIG"
STATE="$WORK/state"

# Warm the page cache: every byte read once.
find "$TREE" -type f -print0 | xargs -0 cat > /dev/null

seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null 2>&1 || true; t1=$(date +%s.%N); awk "BEGIN {print $t1 - $t0}"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ex=(); full=(); inc=()
rm -rf "$STATE"; mkdir -p "$STATE"
seconds "$BIN" --config "$CONFIG" scan --state-dir "$STATE" --incremental --format json --jobs "$JOBS" "$TREE" > /dev/null
for r in $(seq 1 "$RUNS"); do
  ex+=("$(seconds exiftool -r -json -q "$TREE")")
  full+=("$(seconds "$BIN" --config "$CONFIG" scan --state-dir "$STATE" --format json --jobs "$JOBS" "$TREE")")
  inc+=("$(seconds "$BIN" --config "$CONFIG" scan --state-dir "$STATE" --incremental --format json --jobs "$JOBS" "$TREE")")
done
EX=$(printf '%s\n' "${ex[@]}" | median)
FULL=$(printf '%s\n' "${full[@]}" | median)
INC=$(printf '%s\n' "${inc[@]}" | median)
calc() { awk "BEGIN {print $1}"; }
rate() { calc "$FILES / $1"; }
{
  echo "tree: $FILES files, $BYTES bytes ($COPIES copies of the corpus), jobs $JOBS, $(nproc) cores, median of $RUNS, warm cache"
  printf '%-34s %10s %12s\n' "" "seconds" "files/s"
  printf '%-34s %10.2f %12.0f\n' "exiftool -r -json" "$EX" "$(rate "$EX")"
  printf '%-34s %10.2f %12.0f\n' "labelgate scan (full)" "$FULL" "$(rate "$FULL")"
  printf '%-34s %10.2f %12.0f\n' "labelgate scan --incremental" "$INC" "$(rate "$INC")"
  printf 'labelgate ÷ ExifTool: %.0f×   (target ≥ 100×)\n' "$(calc "$EX / $FULL")"
  printf 'full ÷ incremental:   %.1f×   (target ≥ 20×)\n' "$(calc "$FULL / $INC")"
  echo "runs: exiftool ${ex[*]}; full ${full[*]}; incremental ${inc[*]}"
} | tee "$WORK/result.txt"
