#!/usr/bin/env bash
# labelgate scan beside ExifTool on the same tree, in the same run: the corpus copied COPIES
# times (default 500) into a tree, a labels-only configuration (no at-rest rule), the page cache
# warmed first, each measured RUNS times (default 3) and the median reported:
#   - ExifTool:            exiftool -r -json TREE
#   - labelgate, full:     labelgate scan --format json --jobs JOBS TREE (JOBS default 2)
#   - labelgate, indexed:  the same with --incremental, after one run that fills the index
# Both readings are measured: labels only ([scan] files_inside = false: each file's own labels,
# what ExifTool reads) and the default (every file inside archives, e-mail and documents read
# too), each without the index, with --incremental the first time (filling it) and again.
# Prints a table (files/s, and the ratios the issue sets targets for: labelgate ÷ ExifTool
# ≥ 100×, an incremental re-scan ≥ 20× faster than the first) and writes it to
# target/scan-bench/result.txt.
#
# Usage: benches/scan/run.sh [COPIES] [RUNS]     (JOBS=2 SCAN_BENCH_DIR=target/scan-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
COPIES="${1:-500}"
RUNS="${2:-3}"
JOBS="${JOBS:-2}"

if ! command -v exiftool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libimage-exiftool-perl
fi

. benches/scan/common.sh
# Labels only: each file's own labels ([scan] files_inside = false), what ExifTool reads. And
# the default: every file inside archives, e-mail and documents read too.
LABELS="$WORK/labels-only.toml"
printf '[policy]\ndefault_action = "allow"\n[scan]\nfiles_inside = false\n' > "$LABELS"
INSIDE="$WORK/files-inside.toml"
printf '[policy]\ndefault_action = "allow"\n[scan]\nfiles_inside = true\n' > "$INSIDE"

# Seconds a command takes; a scan that fails (exit other than 0, or 3 for a rule match) stops
# the bench rather than timing as a fast run. ExifTool exits 1 on a file it cannot read.
seconds() {
  local t0 t1 rc=0
  t0=$(date +%s.%N); "$@" > /dev/null 2>"$WORK/last.err" || rc=$?; t1=$(date +%s.%N)
  if [ "$1" != exiftool ] && [ "$rc" != 0 ] && [ "$rc" != 3 ]; then echo "benches/scan/run.sh: $* failed ($rc)" >&2; cat "$WORK/last.err" >&2; exit 1; fi
  awk "BEGIN {print $t1 - $t0}"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
calc() { awk "BEGIN {print $1}"; }
rate() { calc "$FILES / $1"; }
scan() { local config="$1"; shift; "$BIN" --config "$config" scan --format json --jobs "$JOBS" "$@" "$TREE"; }

ex=(); full=(); first=(); again=(); ifull=(); ifirst=(); iagain=()
warm() { find "$TREE" -type f -print0 | xargs -0 cat > /dev/null; }
for r in $(seq 1 "$RUNS"); do
  # The cache warmed again before each block: a 5-minute ExifTool run can leave some of the tree
  # evicted, and whoever runs next would pay for it.
  warm
  ex+=("$(seconds exiftool -r -json -q "$TREE")")
  warm
  full+=("$(seconds scan "$LABELS" --state-dir "$WORK/state-none")")
  rm -rf "$WORK/state-labels"
  first+=("$(seconds scan "$LABELS" --state-dir "$WORK/state-labels" --incremental)")
  again+=("$(seconds scan "$LABELS" --state-dir "$WORK/state-labels" --incremental)")
  ifull+=("$(seconds scan "$INSIDE" --state-dir "$WORK/state-none")")
  rm -rf "$WORK/state-inside"
  ifirst+=("$(seconds scan "$INSIDE" --state-dir "$WORK/state-inside" --incremental)")
  iagain+=("$(seconds scan "$INSIDE" --state-dir "$WORK/state-inside" --incremental)")
done
m() { printf '%s\n' "$@" | median; }
EX=$(m "${ex[@]}"); FULL=$(m "${full[@]}"); FIRST=$(m "${first[@]}"); AGAIN=$(m "${again[@]}")
IFULL=$(m "${ifull[@]}"); IFIRST=$(m "${ifirst[@]}"); IAGAIN=$(m "${iagain[@]}")
row() { printf '%-52s %10.2f %12.0f\n' "$1" "$2" "$(rate "$2")"; }
{
  echo "tree: $FILES files, $BYTES bytes ($COPIES copies of the corpus), jobs $JOBS, $(nproc) cores, median of $RUNS, warm cache"
  printf '%-52s %10s %12s\n' "" "seconds" "files/s"
  row "exiftool -r -json" "$EX"
  row "labelgate scan, labels only" "$FULL"
  row "  --incremental, first (fills the index)" "$FIRST"
  row "  --incremental, again" "$AGAIN"
  row "labelgate scan, files inside read (the default)" "$IFULL"
  row "  --incremental, first (fills the index)" "$IFIRST"
  row "  --incremental, again" "$IAGAIN"
  printf 'labels only ÷ ExifTool:                 %.0f×   (target ≥ 100×)\n' "$(calc "$EX / $FULL")"
  printf 'files inside ÷ ExifTool:                %.0f×\n' "$(calc "$EX / $IFULL")"
  printf 're-scan vs first, labels only:          %.1f× faster than the first incremental scan, %.1f× than a scan without the index (target ≥ 20×)\n' "$(calc "$FIRST / $AGAIN")" "$(calc "$FULL / $AGAIN")"
  printf 're-scan vs first, files inside:         %.1f× faster than the first incremental scan, %.1f× than a scan without the index\n' "$(calc "$IFIRST / $IAGAIN")" "$(calc "$IFULL / $IAGAIN")"
  echo "runs: exiftool ${ex[*]}; labels only ${full[*]}; first ${first[*]}; again ${again[*]}; files inside ${ifull[*]}; first ${ifirst[*]}; again ${iagain[*]}"
} | tee "$WORK/result.txt"
