#!/usr/bin/env bash
# Prints, on one line, the path of a Python interpreter that has pikepdf, msoffcrypto-tool,
# olefile, cryptography and python-docx: the fixture generators under crates/*/tests need them, and Debian's
# python3 has none. The first call makes a venv at ${CARGO_TARGET_DIR:-<repo>/target}/pyvenv
# and pip-installs pinned versions into it; later calls only print its path. Several test
# processes may call this at once: a flock on pyvenv.lock beside the venv makes one of them
# build it while the others wait. qpdf (a command, not a Python package) is scripts/test.sh's job.
#
# Usage: "$(scripts/python.sh)" crates/unpack/tests/make_hidden.py OUTDIR CORPUSDIR
set -euo pipefail

die() { echo "scripts/python.sh: $*" >&2; exit 1; }

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac   # cargo reads it relative to the caller
venv="$target/pyvenv"
lock="$target/pyvenv.lock"
py="$venv/bin/python"
stamp="$venv/labelgate-requirements.txt"

# Top-level pins; a change here rebuilds the venv (the stamp holds the list it was built with).
requirements="pikepdf==10.18.0
msoffcrypto-tool==6.1.0
olefile==0.47
cryptography==46.0.3
websockets==17.4
websocket-client==1.9.2
boto3==1.44.8
moto[server]==5.2.5
tuspy==1.1.0
google-resumable-media==2.11.0
requests==2.34.2
python-docx==1.2.0"

ready() { [ -x "$py" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$requirements" ]; }

if ! ready; then
  command -v python3 >/dev/null 2>&1 || die "python3 not found (scripts/test.sh installs it)"
  command -v flock >/dev/null 2>&1 || die "flock not found (util-linux)"
  mkdir -p "$target" || die "cannot create $target"
  exec 9>"$lock" || die "cannot open $lock"
  flock 9 || die "cannot lock $lock"
  # Another process may have built it while this one waited for the lock.
  if ! ready; then
    echo "scripts/python.sh: building $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 \
      || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    # shellcheck disable=SC2086  # one requirement a word
    "$py" -m pip install --quiet --disable-pip-version-check --no-input $requirements >&2 \
      || { rm -rf "$venv"; die "pip install into $venv failed"; }
    "$py" -c 'import pikepdf, msoffcrypto, olefile, cryptography, websockets, websocket, boto3, moto' >&2 \
      || { rm -rf "$venv"; die "the venv at $venv cannot import its packages"; }
    # Written last, so that a half-built venv is never taken as ready.
    printf '%s' "$requirements" >"$stamp"
  fi
  exec 9>&-
fi
echo "$py"
