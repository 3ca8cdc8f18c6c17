#!/usr/bin/env bash
# Build the ComfyUI the node tests run against (tested: 0.3.64, a125cd84), from a source tarball
# (e.g. ../shared/comfyui/ComfyUI-0.3.64.tar.gz, which unpacks to ComfyUI/) or a bare git mirror of
# Comfy-Org/ComfyUI. Then run the whole suite with:
#   COMFYUI_PATH=DEST VENV/bin/python -m pytest
# Usage: tools/comfyui/setup.sh TARBALL_OR_MIRROR DEST VENV [--browser]
#   --browser  also Chromium (Debian package) and Playwright (pip, no browser download) for
#              tests/test_workflows_browser.py
set -euo pipefail
SOURCE=$1 DEST=$2 VENV=$3 BROWSER=${4:-}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$DEST"
if [ -f "$SOURCE" ]; then
  echo "ComfyUI source: $SOURCE (sha256 $(sha256sum "$SOURCE" | cut -d' ' -f1))"
  unpacked=$(mktemp -d)
  tar -xzf "$SOURCE" -C "$unpacked"
  [ -f "$unpacked/ComfyUI/main.py" ] || { echo "$SOURCE does not unpack to ComfyUI/main.py" >&2; exit 1; }
  mkdir -p "$(dirname "$DEST")"
  mv "$unpacked/ComfyUI" "$DEST"
  rm -rf "$unpacked"
else
  echo "ComfyUI commit: $(git --git-dir "$SOURCE" rev-parse HEAD)"
  python3 "$REPO/tools/comfyui/extract_tree.py" "$SOURCE" "$DEST" HEAD
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pins=$(mktemp)
printf 'torch==2.14.1\ntorchvision==0.29.1\n' > "$pins"   # keep ComfyUI's torch; nothing may re-resolve it
pip=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
"${pip[@]}" install torch==2.14.1 torchvision==0.29.1
"${pip[@]}" install -c "$pins" -r "$DEST/requirements.txt" requests
# the pack's own requirements and test extra, as the README's test command installs them
"${pip[@]}" install -c "$pins" -r "$REPO/requirements.txt" -e "$REPO[test]"
if [ "$BROWSER" = "--browser" ]; then
  if [ ! -x /usr/bin/chromium ]; then
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q chromium
  fi
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "${pip[@]}" install -c "$pins" playwright
fi
rm -f "$pins"
(cd "$DEST" && "$VENV/bin/python" main.py --cpu --quick-test-for-ci --disable-auto-launch --disable-api-nodes \
   --database-url sqlite:///:memory: 2>&1) | tee "$DEST/quick-test.log"
! grep -qE 'IMPORT FAILED|Cannot import' "$DEST/quick-test.log"
