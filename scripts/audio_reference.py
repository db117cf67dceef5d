#!/usr/bin/env python3
"""Reference values for the audio front-end (reference only; never a product dependency).

    audio_reference.py make-fixtures DIR   espeak-ng speech in several voices, clean and with noise,
                                           16 kHz 16-bit mono WAVs (needs espeak-ng and sox)
    audio_reference.py reference DIR       librosa MFCCs and parselmouth (Praat) F0 of every WAV in
                                           DIR, written to DIR/reference.json
    audio_reference.py time WAV REPEATS    seconds librosa takes for comparable features of WAV
                                           (MFCC, RMS, ZCR, spectral flux, YIN F0 at the device's
                                           framing), best of REPEATS; prints JSON

Run inside the venv that bench/venv.sh makes (librosa, praat-parselmouth, numpy).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

# (name, espeak-ng voice, pitch 0-99, text)
VOICES = [
    ("us_male", "en-us", 40, "I have not been sleeping well lately, and most days I feel tired."),
    ("us_female", "en-us+f3", 60, "Sometimes I enjoy going for a walk by the river with my friends."),
    ("gb_low", "en-gb+m3", 25, "It is hard to say how long it has been since I felt like myself."),
    ("gb_high", "en-gb+f4", 75, "My work keeps me busy, but I try to find time for music."),
]
NOISE_SNR_DB = 15.0


def make_fixtures(out):
    import numpy as np
    import soundfile as sf

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261125)
    with tempfile.TemporaryDirectory() as tmp:
        for name, voice, pitch, text in VOICES:
            raw = os.path.join(tmp, name + ".wav")
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "150", "-w", raw, text], check=True)
            clean = os.path.join(out, name + "_clean.wav")
            subprocess.run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", clean, "rate", "-v"], check=True)
            x, sr = sf.read(clean, dtype="float32")
            speech_power = np.mean(x[np.abs(x) > 0.01] ** 2)
            noise = rng.normal(0.0, np.sqrt(speech_power / 10 ** (NOISE_SNR_DB / 10)), size=x.shape)
            noisy = np.clip(x + noise, -1.0, 32767 / 32768)
            sf.write(os.path.join(out, name + "_noisy.wav"), noisy.astype(np.float32), sr, subtype="PCM_16")


def reference(folder):
    import librosa
    import numpy as np
    import parselmouth

    out = {"librosa": librosa.__version__, "parselmouth": parselmouth.__version__, "files": {}}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".wav"):
            continue
        path = os.path.join(folder, f)
        y, sr = librosa.load(path, sr=None)
        mfcc = librosa.feature.mfcc(y=y, sr=sr)  # every other argument at librosa's default
        pitch = parselmouth.Sound(path).to_pitch()  # Praat defaults: ac, 75-600 Hz, step 0.75/75
        out["files"][f] = {
            "sr": int(sr),
            "mfcc": np.asarray(mfcc, dtype=np.float64).round(5).tolist(),
            "pitch_times": [round(float(t), 6) for t in pitch.xs()],
            "pitch_hz": [round(float(v), 4) for v in pitch.selected_array["frequency"]],
        }
    with open(os.path.join(folder, "reference.json"), "w") as fh:
        json.dump(out, fh, separators=(",", ":"))


def timing(wav, repeats):
    import librosa
    import numpy as np

    y, sr = librosa.load(wav, sr=None)

    def run():
        s = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400, center=False)) ** 2
        mel = librosa.feature.melspectrogram(S=s, sr=sr, n_mels=40)
        librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13)
        librosa.feature.rms(y=y, frame_length=400, hop_length=160, center=False)
        librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=160, center=False)
        librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sr)
        librosa.yin(y, fmin=75, fmax=600, sr=sr, frame_length=640, hop_length=160, center=False)

    run()  # warm-up (numba/JIT caches, FFT plans)
    best = min(_timed(run) for _ in range(repeats))
    print(json.dumps({"seconds": best, "audio_seconds": len(y) / sr, "librosa": librosa.__version__}))


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "make-fixtures":
        make_fixtures(sys.argv[2])
    elif cmd == "reference":
        reference(sys.argv[2])
    elif cmd == "time":
        timing(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
