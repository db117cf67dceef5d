#!/usr/bin/env bash
# Records faster-whisper's log-mel input, tokens and text for the real recordings the ASR test
# uses, into runtime/tests/whisper-reference.json, which runtime's tests hold tract to.
# Reference only: faster-whisper lives in a venv this script makes (scripts/.venv-asr) and is
# never used by the product.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_whisper.sh
scripts/install_test_data.sh >/dev/null
venv=${ASR_VENV:-scripts/.venv-asr}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import faster_whisper, soundfile" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q faster-whisper==1.2.1 soundfile numpy
fi
p=tests/data/external/speech/pocketsphinx
"$venv/bin/python" scripts/asr_reference.py record runtime/tests/whisper-reference.json \
  $p/00{1,2,3,4,5}.wav $p/sense_and_sensibility_01_austen_64kb-0{870,880,890,920,930}.wav \
  $p/input_2_16k.wav $p/input_4_16k.wav tests/data/external/speech/pyannote/sample.wav
