#!/usr/bin/env bash
# Runs labelgate's whole test suite on a fresh Debian machine: installs what the tests need,
# then checks what reviewers check and runs every test:
#   1. cargo fmt --check, and clippy over every target with warnings as errors;
#   2. every test of the workspace (unit, corpus, pitfalls, hostile-input property tests,
#      archives and e-mails built by Python and 7-Zip, end-to-end tests with curl, Chromium,
#      Prometheus and the fake Graph, the load and fault campaign's slice, doc tests);
#   3. every fuzz target built (cargo-fuzz, installed if missing) and run a few seconds on its
#      seeds, as rustls smoke-runs its fuzzers (LABELGATE_FUZZ_SECS, default 5; 0 skips the runs).
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)  # the admin pages, driven over WebDriver
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)     # labelgate scan run unprivileged (an unreadable file)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)        # a test certificate for the client-assertion flow
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)    # promtool check metrics over /metrics
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)        # archives and e-mails built by Python's own writers
command -v 7zz >/dev/null 2>&1 || command -v 7z >/dev/null 2>&1 || need_apt+=(7zip)  # 7z and encrypted zip fixtures
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)              # .zst fixtures, Content-Encoding: zstd bodies
command -v brotli >/dev/null 2>&1 || need_apt+=(brotli)          # Content-Encoding: br bodies (shapes test)
command -v cpio >/dev/null 2>&1 || need_apt+=(cpio)              # .cpio fixtures (ar comes with binutils, beside gcc)
command -v ar >/dev/null 2>&1 || need_apt+=(binutils)
command -v qpdf >/dev/null 2>&1 || need_apt+=(qpdf)              # encrypted PDF fixtures (make_hidden.py)
command -v exiftool >/dev/null 2>&1 || need_apt+=(libimage-exiftool-perl)  # reads the labels labelgate scan --apply writes
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
# The real-world corpus: ../shared/corpus beside the repository when present, else its 72 files
# fetched from their public GitHub sources at the commits in corpus/provenance.tsv into a cache
# (~/.cache/labelgate/corpus) and checked against their SHA-256 (curl, installed above, and
# coreutils' sha256sum). Tests, benches and fuzz/seed.sh read it through LABELGATE_CORPUS; see
# corpus/README.md.
LABELGATE_CORPUS="$(scripts/corpus.sh)"
export LABELGATE_CORPUS

step() { printf '\n== scripts/test.sh: %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
step "cargo test --workspace"
cargo test --workspace --locked "$@"

step "fuzz targets: build, then ${LABELGATE_FUZZ_SECS:-5} s each on their seeds"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked -q
# The toolchain is stable: cargo-fuzz's nightly flags are allowed with RUSTC_BOOTSTRAP. No
# sanitizer (safe Rust; the smoke run looks for panics, overflows and hangs), debug assertions on.
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -O -a -s none)
if [ "${LABELGATE_FUZZ_SECS:-5}" != 0 ]; then
  fuzz/seed.sh >/dev/null
  for target in $(cd fuzz && cargo fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    (cd fuzz && cargo fuzz run -O -a -s none "$target" "corpus/$target" -- \
      -max_total_time="${LABELGATE_FUZZ_SECS:-5}" -rss_limit_mb=2048 -timeout=10 >"target/smoke-$target.log" 2>&1) || {
      echo "scripts/test.sh: fuzz target $target failed; its log:" >&2
      tail -40 "fuzz/target/smoke-$target.log" >&2
      exit 1
    }
    echo "fuzz $target: $(grep -Eo 'Done [0-9]+ runs' "fuzz/target/smoke-$target.log" | tail -1)" >&2
  done
fi
step "all checks passed"
