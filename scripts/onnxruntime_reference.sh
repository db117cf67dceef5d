#!/usr/bin/env bash
# Writes BUNDLE.onnxruntime.json beside BUNDLE (default: the committed bundle): onnxruntime's
# outputs for a few inputs, which `runtime`' tests compare with tract's. Makes the reference venv (bench/.venv) if
# needed. Run it whenever a bundle is re-exported; the test names this script when the recorded
# reference is for another model.onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle="${1:-assets/model/mimml-synth}"
venv=bench/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q onnxruntime numpy
fi
"$venv/bin/python" scripts/onnxruntime_reference.py "$bundle" "${bundle%/}.onnxruntime.json"
