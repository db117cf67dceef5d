"""faster-whisper, the reference for runtime::whisper (reference only, never a product
dependency): the same model files (assets/asr/whisper-tiny.en), CTranslate2 on the CPU in
float32, greedy (beam_size=1, temperature 0), without timestamps, each recording on its own.

  record OUT.json FILE...   its log-mel input (every 31st frame), tokens, text, no-speech
                            probability and mean log probability per 30-s window
  time REPEATS FILE...      seconds to transcribe the files, one thread, best of REPEATS, and
                            the texts, as JSON
"""
import json
import os
import sys
import time

import numpy as np
import soundfile as sf
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim

MODEL = "assets/asr/whisper-tiny.en"
OPTIONS = dict(beam_size=1, temperature=0.0, without_timestamps=True, condition_on_previous_text=False,
               vad_filter=False, language="en")
STRIDE = 31


def load(path):
    audio, rate = sf.read(path, dtype="float32")
    if audio.ndim != 1 or rate != 16000:
        sys.exit(f"{path}: {rate} Hz, {audio.ndim} channel axes; the record takes 16 kHz mono")
    return audio


def truth(path):
    """The transcript that ships with a recording: pocketsphinx's `cards.transcription` for the
    card recordings, the LibriVox sentences' own `.txt`; None where there is none."""
    txt = os.path.splitext(path)[0] + ".txt"
    if os.path.exists(txt):
        return open(txt).read().strip()
    cards = os.path.join(os.path.dirname(path), "cards.transcription")
    stem = os.path.splitext(os.path.basename(path))[0]
    if os.path.exists(cards):
        for line in open(cards):
            if line.rstrip().endswith(f"({stem})"):
                return " ".join(w for w in line.split() if not w.startswith(("<", "(")))
    return None


def model():
    return WhisperModel(MODEL, device="cpu", compute_type="float32", cpu_threads=1, num_workers=1)


def record(out, files):
    m = model()
    records = []
    for path in files:
        audio = load(path)
        mel = m.feature_extractor(audio)[:, :-1]
        segments, _ = m.transcribe(audio, **OPTIONS)
        windows = [dict(start_s=s.seek * 0.01, tokens=list(s.tokens), text=s.text, no_speech_prob=s.no_speech_prob,
                        avg_logprob=s.avg_logprob, compression_ratio=s.compression_ratio) for s in segments]
        # The first window as the encoder sees it, to check the padding too.
        first = pad_or_trim(mel[:, :3000])
        records.append(dict(
            file=path, truth=truth(path), samples=len(audio), frames=int(mel.shape[1]), stride=STRIDE,
            mel=[[float(f"{v:.6g}") for v in first[:, t]] for t in range(0, min(mel.shape[1] + 20, 3000), STRIDE)],
            windows=windows))
        print(f"{path}: {' | '.join(w['text'] for w in windows)}", file=sys.stderr)
    import ctranslate2, faster_whisper
    doc = dict(reference=f"faster-whisper {faster_whisper.__version__}, ctranslate2 {ctranslate2.__version__}, "
                         "float32 on the CPU, " + ", ".join(f"{k}={v}" for k, v in OPTIONS.items()),
               numpy=np.__version__, recordings=records)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def timing(repeats, files):
    m = model()
    audios = [load(p) for p in files]
    list(m.transcribe(audios[0], **OPTIONS)[0])  # warm-up
    best, texts = float("inf"), []
    for _ in range(repeats):
        t = time.perf_counter()
        texts = [" ".join(s.text.strip() for s in m.transcribe(a, **OPTIONS)[0]) for a in audios]
        best = min(best, time.perf_counter() - t)
    print(json.dumps(dict(seconds=best, texts=texts)))


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "time":
        timing(int(sys.argv[2]), sys.argv[3:])
    else:
        sys.exit(__doc__)
