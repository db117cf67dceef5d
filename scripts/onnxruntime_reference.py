"""Runs a MIMML bundle's ONNX with onnxruntime (the independent reference; never a product
dependency) and writes OUT (JSON): a few inputs and onnxruntime's outputs for them. `runtime`'
tests run tract on the same inputs and compare. Usage (scripts/onnxruntime_reference.sh makes the
venv): python onnxruntime_reference.py BUNDLE_DIR OUT
Cases: the bundle's golden input (a short session: tract's general plan), and full-length
sessions (max_segments rows: tract's specialised plan) with all modalities and with video absent.
An absent modality is fed as the device feeds it: zero rows, its `present` flag 0."""
import hashlib
import json
import pathlib
import sys
import tomllib

import numpy as np
import onnxruntime as ort

bundle, out_path = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
manifest = tomllib.loads((bundle / "manifest.toml").read_text())
onnx_path = bundle / "model.onnx"
golden = json.loads((bundle / "golden.json").read_text())
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
widths = [sess.get_inputs()[m].shape[2] for m in range(3)]

def run(rows):
    t_full = max(len(r) for r in rows)
    feeds, present = {}, []
    for m, name in enumerate(["audio", "video", "text"]):
        r = rows[m]
        present.append(1.0 if r else 0.0)
        t = len(r) if r else t_full
        data = np.asarray(r, dtype=np.float32) if r else np.zeros((t, widths[m]), np.float32)
        feeds[name] = data.reshape(1, t, widths[m])
    feeds["present"] = np.asarray([present], dtype=np.float32)
    p, phq, gates = sess.run(None, feeds)
    return {"p_depressed": float(p.ravel()[0]), "phq8": float(phq.ravel()[0]), "gates": gates.ravel().tolist()}

rng = np.random.default_rng(7)
t = manifest["max_segments"]
full = [rng.normal(0.0, 1.0, (t, widths[m])).round(4).tolist() for m in range(3)]
cases = [
    ("golden", golden["inputs"]),
    ("full", full),
    ("full, video absent", [full[0], [], full[2]]),
]
out = {
    "onnxruntime": ort.__version__,
    "model_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
    "cases": [{"name": n, "inputs": rows, **run(rows)} for n, rows in cases],
}
out_path.write_text(json.dumps(out))
print(f"{out_path}: {len(cases)} cases, onnxruntime {ort.__version__}")
