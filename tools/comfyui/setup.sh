#!/usr/bin/env bash
# Build the ComfyUI that the node tests run against, from a bare git mirror of Comfy-Org/ComfyUI
# (tested: 0.3.64, a125cd84). Then run the node tests with:
#   COMFYUI_PATH=DEST VENV/bin/python -m pytest
# Usage: tools/comfyui/setup.sh MIRROR_GIT_DIR DEST VENV [--browser]
set -euo pipefail
MIRROR=$1 DEST=$2 VENV=$3
REPO=$(cd "$(dirname "$0")/../.." && pwd)
echo "ComfyUI commit: $(git --git-dir "$MIRROR" rev-parse HEAD)"
rm -rf "$DEST"
python3 "$REPO/tools/comfyui/extract_tree.py" "$MIRROR" "$DEST" HEAD
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pins=$(mktemp)
printf 'torch==2.14.1\ntorchvision==0.29.1\n' > "$pins"   # keep ComfyUI's torch; nothing may re-resolve it
"$VENV/bin/pip" install torch==2.14.1 torchvision==0.29.1
"$VENV/bin/pip" install -c "$pins" -r "$DEST/requirements.txt" requests
"$VENV/bin/pip" install -c "$pins" -r "$REPO/requirements.txt" pytest scikit-image scipy packaging
if [ "${4:-}" = "--browser" ]; then  # for tests/test_workflows_browser.py
  apt-get update && apt-get install -y chromium
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/pip" install playwright
fi
(cd "$DEST" && "$VENV/bin/python" main.py --cpu --quick-test-for-ci --disable-auto-launch --disable-api-nodes \
   --database-url sqlite:///:memory: 2>&1) | tee "$DEST/quick-test.log"
! grep -qE 'IMPORT FAILED|Cannot import' "$DEST/quick-test.log"
