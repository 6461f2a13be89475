#!/usr/bin/env bash
# Refreshes the README's screenshots of the admin pages: runs the headless-Chromium test, which
# drives both pages against the fake Graph and writes target/ui-mip-labels.png and
# target/ui-cloud-apps.png, then copies them into docs/images/.
#
# Usage: scripts/ui-screenshots.sh   (chromium and chromium-driver: scripts/test.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || { echo "scripts/ui-screenshots.sh: $tool not found (apt-get install chromium chromium-driver)" >&2; exit 2; }
done
LABELGATE_CORPUS="${LABELGATE_CORPUS:-$(scripts/corpus.sh)}"
export LABELGATE_CORPUS
rm -f target/ui-mip-labels.png target/ui-cloud-apps.png
cargo test -p labelgate --test e2e --locked -q -- --exact ui::the_admin_pages_in_headless_chromium
mkdir -p docs/images
cp target/ui-mip-labels.png target/ui-cloud-apps.png docs/images/
echo "docs/images/ui-mip-labels.png docs/images/ui-cloud-apps.png updated" >&2
