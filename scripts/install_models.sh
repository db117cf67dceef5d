#!/usr/bin/env bash
# Installs the models this repository does not commit (each script says where it comes from and
# its licence): silero-vad (voice activity), dlib's 68-point landmark model and the optional
# sentence encoder all-MiniLM-L6-v2, and Whisper tiny.en (on-device transcription).
set -euo pipefail
cd "$(dirname "$0")"
./install_silero_vad.sh
./install_landmark_model.sh
./install_minilm.sh
./install_whisper.sh
