#!/usr/bin/env bash
# Installs silero-vad's 16 kHz ONNX model (MIT licence) from the PyPI package `silero-vad` into
# assets/vad/, where the device and the tests look for it. The model is not committed. Needs pip
# and PyPI; nothing is imported or kept besides the .onnx file.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=assets/vad/silero_vad_op18_ifless.onnx
version=6.2.3
if [ -s "$dest" ]; then
  echo "silero-vad already installed: $dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps "silero-vad==$version" -d "$tmp"
python3 - "$tmp"/silero_vad-*.whl "$dest" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    data = z.read("silero_vad/data/silero_vad_op18_ifless.onnx")
os.makedirs(os.path.dirname(dest), exist_ok=True)
with open(dest + ".part", "wb") as f:
    f.write(data)
os.replace(dest + ".part", dest)
print(f"silero-vad {len(data)} bytes -> {dest}")
PY
