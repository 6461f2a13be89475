# Sourced by the benches/scan scripts after COPIES, RUNS and JOBS are set: the work directory
# ($SCAN_BENCH_DIR, default target/scan-bench), the corpus ($CORPUS), a release build ($BIN),
# and the corpus copied $COPIES times into $WORK/tree-$COPIES (kept between runs once
# complete), ten shares of copies; sets TREE, FILES and BYTES.
WORK="${SCAN_BENCH_DIR:-target/scan-bench}"
mkdir -p "$WORK"
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
