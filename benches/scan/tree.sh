# Sourced by the benches/scan scripts: the corpus ($CORPUS) copied $COPIES times into
# $WORK/tree-$COPIES (kept between runs once complete), ten shares of copies; sets TREE, FILES
# and BYTES.
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
