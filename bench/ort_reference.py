"""Reference timing for `bench/run inference`: the same ONNX model and the same input, run by
onnxruntime on one thread. Reads the input JSON written by the Rust bench; prints one JSON line.
Reference only: never a product dependency."""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, inputs_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
inp = json.load(open(inputs_path))
feeds = {k: np.asarray(v["data"], dtype=np.float32).reshape(v["shape"]) for k, v in inp.items()}
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
out = sess.run(None, feeds)
for _ in range(5):
    sess.run(None, feeds)
t = time.perf_counter()
for _ in range(runs):
    sess.run(None, feeds)
ms = (time.perf_counter() - t) * 1000 / runs
print(json.dumps({"ms": ms, "p_depressed": float(out[0].ravel()[0]), "phq8": float(out[1].ravel()[0]), "gates": out[2].ravel().tolist(), "version": ort.__version__}))
