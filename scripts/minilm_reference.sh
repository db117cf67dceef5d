#!/usr/bin/env bash
# Records sentence-transformers' own tokens and embeddings of all-MiniLM-L6-v2 (the model that
# scripts/install_minilm.sh installs) for a few sentences, into runtime/tests/minilm-reference.json,
# which `runtime`' tests hold tract to. Reference only: sentence-transformers and PyTorch live in a
# venv this script makes (scripts/.venv-minilm, several GB) and are never used by the product.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_minilm.sh
venv=${MINILM_VENV:-scripts/.venv-minilm}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sentence_transformers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q sentence-transformers
fi
"$venv/bin/python" - assets/text/all-MiniLM-L6-v2 runtime/tests/minilm-reference.json <<'PY'
import hashlib, json, sys
from sentence_transformers import SentenceTransformer

model_dir, out = sys.argv[1], sys.argv[2]
# The package's own loader wants its whole folder; ours holds the three files the device reads,
# which are all the Transformer, mean-Pooling and Normalize modules need.
from sentence_transformers import models as st_models
word = st_models.Transformer(model_dir, max_seq_length=256)
model = SentenceTransformer(modules=[word, st_models.Pooling(384, "mean"), st_models.Normalize()], device="cpu")
sentences = [
    "I have been feeling really down lately.",
    "Recently I've felt very depressed.",
    "The train to Berlin leaves at nine.",
    "um i don't know... i guess i'm okay, mostly tired",
    "I can't sleep, I wake up at 3 a.m. and that's it — every night!",
    "Naïve café façade, résumé: ÜBER straße 東京",
    "yeah",
    " ".join(["I never really wanted to talk about it but my sister kept asking"] * 30),
]
emb = model.encode(sentences, batch_size=1, convert_to_numpy=True)
records = []
for s, e in zip(sentences, emb):
    ids = model.tokenizer(s, truncation=True, max_length=256)["input_ids"]
    records.append({"text": s, "ids": ids, "embedding": [float(f"{v:.7g}") for v in e]})
weights = open(f"{model_dir}/model.safetensors", "rb").read()
doc = {
    "model_sha256": hashlib.sha256(weights).hexdigest(),
    "reference": f"sentence-transformers {__import__('sentence_transformers').__version__}, torch {__import__('torch').__version__}",
    "sentences": records,
}
with open(out, "w") as f:
    json.dump(doc, f, ensure_ascii=False, indent=1)
print(f"{len(records)} sentences -> {out}")
PY
