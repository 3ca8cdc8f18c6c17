#!/usr/bin/env bash
# Install this pack into a fresh ComfyUI environment the way ComfyUI-Manager does
# (`pip install -r requirements.txt` with ComfyUI's Python) and show what that changes.
#
# Usage: tools/check_install.sh [COMFYUI_DIR] [VENV_DIR] [CONSTRAINTS_FOR_COMFYUI]
#   COMFYUI_DIR              a ComfyUI checkout (default /work/comfyui)
#   VENV_DIR                 the throw-away venv to create, emptied first (default /work/freeze-check-venv)
#   CONSTRAINTS_FOR_COMFYUI  optional pip constraints used only while installing ComfyUI's own
#                            requirements (e.g. a torch pin); our requirements are installed without it
#
# Steps: fresh venv -> ComfyUI's requirements.txt -> pip freeze (before) -> our requirements.txt ->
# pip freeze (after) -> diff. Exit status 1 when any package present before was upgraded, downgraded or
# removed; only additions are allowed. Needs a package index (network or a local mirror).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
COMFY=${1:-/work/comfyui}
VENV=${2:-/work/freeze-check-venv}
PIN=${3:-}
OUT=${CHECK_INSTALL_OUT:-$VENV.freeze}
mkdir -p "$OUT"

python3 -m venv --clear "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip
echo "== installing ComfyUI's requirements ($COMFY/requirements.txt)"
if [ -n "$PIN" ]; then
    "${PIP[@]}" install -q -c "$PIN" -r "$COMFY/requirements.txt"
else
    "${PIP[@]}" install -q -r "$COMFY/requirements.txt"
fi
"${PIP[@]}" freeze --all | sort > "$OUT/before.txt"

echo "== installing $REPO/requirements.txt as ComfyUI-Manager does (no constraints)"
# PIP_CONSTRAINT= drops any machine-wide constraint file, so a torch change could not be masked by it.
PIP_CONSTRAINT= "${PIP[@]}" install -r "$REPO/requirements.txt"
"${PIP[@]}" freeze --all | sort > "$OUT/after.txt"

echo "== pip freeze diff (before -> after)"
diff "$OUT/before.txt" "$OUT/after.txt" > "$OUT/diff.txt" || true
cat "$OUT/diff.txt"
removed=$(grep -c '^<' "$OUT/diff.txt" || true)
added=$(grep -c '^>' "$OUT/diff.txt" || true)
echo "== $added line(s) added, $removed line(s) removed or changed (freezes in $OUT)"
if [ "$removed" != "0" ]; then
    echo "FAIL: installing requirements.txt changed packages ComfyUI had installed:" >&2
    grep '^<' "$OUT/diff.txt" >&2
    exit 1
fi
echo "OK: only additions"
