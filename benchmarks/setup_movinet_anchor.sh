#!/usr/bin/env bash
# Installs what benchmarks/movinet_anchor.py needs to *build* the MoViNet-A0-Stream anchor
# (TF Model Garden) into a separate target dir, never into the project venv (it stays clean for CI).
# --no-deps: TensorFlow, tf_keras, numpy, pyyaml, matplotlib, pillow, absl, ... come from .venv;
# the list is exactly the modules `official.projects.movinet.tools.export_saved_model` imports
# (through official.core / official.vision) that .venv lacks. Idempotent: exits early when the
# import already works.
#
#   bash benchmarks/setup_movinet_anchor.sh            # target: ~/.cache/tfkit/movinet-anchor/site
#   TFKIT_MOVINET_PYTHONPATH=/some/dir bash benchmarks/setup_movinet_anchor.sh
#   PYTHON=/path/to/python bash benchmarks/setup_movinet_anchor.sh
#
# Then: PYTHONPATH=<target> .venv/bin/python benchmarks/movinet_anchor.py --json out/movinet.json
# (benchmarks/_movinet.py sets that PYTHONPATH itself). About 240 MB, mostly OpenCV, which
# official.vision imports at module level.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
TARGET="${TFKIT_MOVINET_PYTHONPATH:-${TFKIT_MOVINET_CACHE:-$HOME/.cache/tfkit/movinet-anchor}/site}"

check() {
  PYTHONPATH="$TARGET" TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c \
    "from official.projects.movinet.tools import export_saved_model" >/dev/null 2>&1
}

if [ -d "$TARGET" ] && check; then
  echo "movinet anchor deps already importable from $TARGET"
  exit 0
fi

mkdir -p "$TARGET"
"$PYTHON" -m pip install --no-deps --upgrade --target "$TARGET" \
  tf-models-official==2.20.0 \
  gin-config==0.5.0 \
  immutabledict==4.3.1 \
  tensorflow-datasets==4.9.10 \
  tensorflow-metadata==1.21.0 \
  etils==1.15.0 \
  toml==0.10.2 \
  promise==2.3 \
  pycocotools==2.0.11 \
  opencv-python-headless==5.0.0.93

if check; then
  echo "movinet anchor deps installed in $TARGET ($(du -sh "$TARGET" | cut -f1))"
else
  echo "installed into $TARGET but the import still fails; see:" >&2
  PYTHONPATH="$TARGET" TF_USE_LEGACY_KERAS=1 "$PYTHON" -c \
    "from official.projects.movinet.tools import export_saved_model" 2>&1 | tail -3 >&2
  exit 1
fi
