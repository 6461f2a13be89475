#!/usr/bin/env bash
# Seeds each fuzz target's corpus from ../shared/corpus (real Office/Purview files) and from
# the testkit's generated pitfall fixtures. Run from the repository root: fuzz/seed.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
shared="$here/../../shared/corpus/files"
for t in ooxml pdf cfb eml; do mkdir -p "$here/corpus/$t"; done
for f in "$shared"/*; do
  magic="$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')"
  case "$magic" in
    504b0304*) cp "$f" "$here/corpus/ooxml/" ;;
    255044462d*) cp "$f" "$here/corpus/pdf/" ;;
    d0cf11e0a1b11ae1) cp "$f" "$here/corpus/cfb/" ;;
  esac
done
cargo run -q --manifest-path "$here/../Cargo.toml" -p labelgate-testkit --example seeds -- "$here/corpus"
