#!/usr/bin/env bash
# Runs labelgate's whole test suite on a fresh Debian machine: installs what the tests need,
# then builds and runs every test of the workspace (unit, corpus, pitfalls, hostile-input
# property tests, archives and e-mails built by Python and 7-Zip, CLI end-to-end tests, MIP account
# sync against the fake Graph, doc tests).
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)        # a test certificate for the client-assertion flow
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)    # promtool check metrics over /metrics
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)        # archives and e-mails built by Python's own writers
command -v 7zz >/dev/null 2>&1 || command -v 7z >/dev/null 2>&1 || need_apt+=(7zip)  # 7z and encrypted zip fixtures
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)              # .zst fixtures, Content-Encoding: zstd bodies
command -v brotli >/dev/null 2>&1 || need_apt+=(brotli)          # Content-Encoding: br bodies (shapes test)
command -v cpio >/dev/null 2>&1 || need_apt+=(cpio)              # .cpio fixtures (ar comes with binutils, beside gcc)
command -v ar >/dev/null 2>&1 || need_apt+=(binutils)
command -v qpdf >/dev/null 2>&1 || need_apt+=(qpdf)              # encrypted PDF fixtures (make_hidden.py)
python3 -m ensurepip --version >/dev/null 2>&1 || need_apt+=(python3-venv)  # scripts/python.sh's venv
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
  exit 2
fi
if [ ! -f ../shared/corpus/manifest.tsv ]; then
  echo "scripts/test.sh: the shared corpus is missing at ../shared/corpus (see README: Corpus)" >&2
  exit 2
fi

exec cargo test --workspace --locked "$@"
