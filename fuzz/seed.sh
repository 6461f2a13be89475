#!/usr/bin/env bash
# Seeds each fuzz target's corpus from the real-world corpus (real Office/Purview files:
# $LABELGATE_CORPUS, else what scripts/corpus.sh prints, ../shared/corpus when present) and from
# the testkit's generated pitfall fixtures. Run from the repository root: fuzz/seed.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
corpus="${LABELGATE_CORPUS:-$("$here/../scripts/corpus.sh")}"
shared="$corpus/files"
for t in ooxml pdf cfb eml text apply; do mkdir -p "$here/corpus/$t"; done
for f in "$shared"/*; do
  magic="$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')"
  case "$magic" in
    504b0304*) cp "$f" "$here/corpus/ooxml/"; cp "$f" "$here/corpus/text/"; cp "$f" "$here/corpus/apply/" ;;
    255044462d*) cp "$f" "$here/corpus/pdf/"; cp "$f" "$here/corpus/text/"; cp "$f" "$here/corpus/apply/" ;;
    d0cf11e0a1b11ae1) cp "$f" "$here/corpus/cfb/" ;;
  esac
done
cargo run -q --manifest-path "$here/../Cargo.toml" -p labelgate-testkit --example seeds -- "$here/corpus"
# Files inside files: containers built by Python and 7-Zip around a small corpus docx, each
# behind the byte that makes the target keep its signature (archives: 0 zip, 1 gzip, 2 bzip2,
# 3 xz, 4 7z, 5 as is, 6 zstd, 7 cpio, 9 ar, 10 lzma; mail: 1 as is, 0 compound file).
mkdir -p "$here/corpus/archives" "$here/corpus/mail"
built="$(mktemp -d)"
python3 "$here/../crates/unpack/tests/make_containers.py" "$built" \
  "$shared/lab_caf_identity-baseline-discipline-template.docx" "$shared/unl_gc_pco-summary-word.docx" \
  "$shared/lab_kernel-memory_legacy-word.doc" "$shared/lab_azfunc_perksplus.pdf"
for f in "$built"/*; do
  name="$(basename "$f")"
  case "$name" in
    *.zip) pick='\x00' ;; *.gz) pick='\x01' ;; *.bz2) pick='\x02' ;; *.xz) pick='\x03' ;; *.7z) pick='\x04' ;; *.tar) pick='\x05' ;; *.zst) pick='\x06' ;; *.cpio) pick='\x07' ;; *.a) pick='\x09' ;; *.lzma) pick='\x0a' ;;
    *.eml) { printf '\x01'; cat "$f"; } > "$here/corpus/mail/$name"; continue ;;
    *) continue ;;
  esac
  { printf "$pick"; cat "$f"; } > "$here/corpus/archives/$name"
done
rm -rf "$built"
# Files hidden in documents (embeddings, attachments, prefixes, no-secret encryption), behind the
# byte that makes the embedded target keep their signature (0 compound file, 1 PDF, 2 ZIP, 3 as is).
mkdir -p "$here/corpus/embedded"
built="$(mktemp -d)"
"$("$here/../scripts/python.sh")" "$here/../crates/unpack/tests/make_hidden.py" "$built" "$shared"
for f in "$built"/*; do
  name="$(basename "$f")"
  case "$name" in
    *prefix*) pick='\x03' ;; *.doc|*velvet*|*password*) pick='\x00' ;; *.pdf) pick='\x01' ;; *) pick='\x02' ;;
  esac
  { printf "$pick"; cat "$f"; } > "$here/corpus/embedded/$name"
done
rm -rf "$built"
