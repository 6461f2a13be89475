#!/usr/bin/env bash
# Prints, as one line on stdout, the absolute path of a corpus directory that holds manifest.tsv,
# exiftool_msip.json and files/ (the 72 real files the tests read; see corpus/README.md).
#
#   * ../shared/corpus beside the repository when it exists and LABELGATE_CORPUS_FETCH is not 1;
#   * otherwise a cache, ${LABELGATE_CORPUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/labelgate/corpus}:
#     manifest.tsv and exiftool_msip.json are copied from corpus/. Every file listed in
#     corpus/provenance.tsv that is missing or has a different SHA-256 is downloaded from
#     ${LABELGATE_CORPUS_SOURCE:-https://raw.githubusercontent.com}/{repo}/{commit}/{path}, checked,
#     and only then moved into place. A failed download or a SHA-256 mismatch ends the script with a
#     non-zero status, after naming the file, the URL and the expected and actual SHA-256.
#
# Progress goes to stderr only. Usage: LABELGATE_CORPUS="$(scripts/corpus.sh)"
set -euo pipefail
unset CDPATH

root="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf 'scripts/corpus.sh: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

if [ "${LABELGATE_CORPUS_FETCH:-0}" != 1 ] && [ -f "$root/../shared/corpus/manifest.tsv" ]; then
  (cd "$root/../shared/corpus" && pwd)
  exit 0
fi

command -v curl >/dev/null 2>&1 || die "curl is needed to fetch the corpus"
if command -v sha256sum >/dev/null 2>&1; then
  sha256() {
    local out
    out="$(sha256sum <"$1")"
    printf '%s\n' "${out%% *}"
  }
elif command -v shasum >/dev/null 2>&1; then
  sha256() {
    local out
    out="$(shasum -a 256 <"$1")"
    printf '%s\n' "${out%% *}"
  }
else
  die "sha256sum (or shasum) is needed to check the corpus"
fi

# Percent-encodes a repository path byte by byte (UTF-8): only A-Z a-z 0-9 . _ ~ - and the /
# between segments stay as they are (paths hold spaces, parentheses and Japanese characters).
urlencode() {
  local LC_ALL=C
  local s="$1" out="" c hex i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~/-]) out+="$c" ;;
      *)
        printf -v hex '%%%02X' "'$c"
        out+="$hex"
        ;;
    esac
  done
  printf '%s\n' "$out"
}

prov="$root/corpus/provenance.tsv"
[ -f "$prov" ] || die "$prov is missing"
source="${LABELGATE_CORPUS_SOURCE:-https://raw.githubusercontent.com}"
source="${source%/}"
cache="${LABELGATE_CORPUS_CACHE:-${XDG_CACHE_HOME:-${HOME:?set LABELGATE_CORPUS_CACHE or HOME}/.cache}/labelgate/corpus}"
mkdir -p "$cache/files"
cache="$(cd "$cache" && pwd)"

# Downloads land in a scratch directory inside the cache (same file system: the move is atomic),
# never in files/, which the tests list.
tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

for meta in manifest.tsv exiftool_msip.json; do
  cp "$root/corpus/$meta" "$tmp/$meta"
  mv -f "$tmp/$meta" "$cache/$meta"
done

fetched=0
cached=0
failed=0
names=""
n=1
exec 3<"$prov"
IFS= read -r header <&3 || die "$prov is empty"
[ "$header" = "$(printf 'file\tsource_repo\tsource_path\tsource_commit\tsha256\tsize')" ] ||
  die "$prov: unexpected header: $header"
while IFS=$'\t' read -r file repo path commit want size extra <&3 || [ -n "${file:-}" ]; do
  n=$((n + 1))
  case "$file" in
    '' | .* | */*) die "$prov:$n: bad file name '$file'" ;;
  esac
  [[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "$prov:$n: bad repository '$repo'"
  [[ "$commit" =~ ^[0-9a-f]{40}$ ]] || die "$prov:$n: bad commit '$commit'"
  [[ "$want" =~ ^[0-9a-f]{64}$ ]] || die "$prov:$n: bad SHA-256 '$want'"
  [[ "$size" =~ ^[0-9]+$ ]] || die "$prov:$n: bad size '$size'"
  [ -n "$path" ] && [ -z "$extra" ] || die "$prov:$n: expected 6 tab-separated columns"
  names+="$file"$'\n'

  dest="$cache/files/$file"
  if [ -f "$dest" ] && [ "$(sha256 "$dest")" = "$want" ]; then
    cached=$((cached + 1))
    continue
  fi
  url="$source/$repo/$commit/$(urlencode "$path")"
  part="$tmp/$file"
  say "fetching $file from $url"
  rc=0
  curl -fsSL --retry 3 --connect-timeout 30 --max-time 600 -o "$part" "$url" </dev/null || rc=$?
  if [ "$rc" != 0 ]; then
    say "FAILED $file: download from $url failed (curl exit $rc); expected SHA-256 $want"
    failed=$((failed + 1))
    rm -f "$part"
    continue
  fi
  got="$(sha256 "$part")"
  if [ "$got" != "$want" ]; then
    say "FAILED $file: SHA-256 differs for $url: expected $want, actual $got"
    failed=$((failed + 1))
    rm -f "$part"
    continue
  fi
  mv -f "$part" "$dest"
  fetched=$((fetched + 1))
done
exec 3<&-

# Files a previous provenance listed and this one does not would change what the tests see.
for f in "$cache/files"/* "$cache/files"/.[!.]*; do
  [ -e "$f" ] || continue
  base="${f##*/}"
  if ! grep -Fxq -- "$base" <<<"$names"; then
    say "removing $base from the cache: not in corpus/provenance.tsv"
    rm -rf -- "$f"
  fi
done

say "$fetched fetched, $cached already cached, $failed failed ($cache)"
[ "$failed" = 0 ] || die "$failed file(s) could not be fetched or did not match corpus/provenance.tsv"
printf '%s\n' "$cache"
