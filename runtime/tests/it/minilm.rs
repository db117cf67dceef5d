//! all-MiniLM-L6-v2 through tract, against sentence-transformers' own tokens and embeddings
//! recorded by `scripts/minilm_reference.sh` (runtime/tests/minilm-reference.json). The model is
//! installed by `scripts/install_minilm.sh`, part of `scripts/install_models.sh`.

use runtime::minilm::{self, MiniLm};
use sha2::Digest;

fn model() -> MiniLm {
    let dir = minilm::default_dir();
    MiniLm::load(&dir).unwrap_or_else(|e| panic!("{e}: install the model with scripts/install_minilm.sh"))
}

#[derive(serde::Deserialize)]
struct Reference {
    model_sha256: String,
    sentences: Vec<Sentence>,
}

#[derive(serde::Deserialize)]
struct Sentence {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn tokens_and_embeddings_match_sentence_transformers() {
    let reference: Reference =
        serde_json::from_str(include_str!("../minilm-reference.json")).expect("the recorded reference parses");
    let weights = std::fs::read(minilm::default_dir().join("model.safetensors")).expect("model installed");
    let sha = sha2::Sha256::digest(&weights);
    let sha: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sha, reference.model_sha256, "the reference is for another model: run scripts/minilm_reference.sh");
    let m = model();
    let mut worst = 0f32;
    for s in &reference.sentences {
        assert_eq!(m.token_ids(&s.text).expect("tokenizes"), s.ids, "{}", s.text);
        let e = m.embed_text(&s.text).expect("embeds");
        let d = e.iter().zip(&s.embedding).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        worst = worst.max(d);
        assert!(d <= 1e-4, "{:?}: max |Δ| {d}", s.text);
    }
    eprintln!("{} sentences, max |Δ| {worst:.2e} against sentence-transformers", reference.sentences.len());
    // The longest sentence is cut at 256 tokens, as sentence-transformers cuts it.
    assert!(reference.sentences.iter().any(|s| s.ids.len() == minilm::MAX_TOKENS));
}

#[test]
fn similar_sentences_are_close() {
    let m = model();
    let a = m.embed_text("I have been feeling really down lately.").expect("embeds");
    let b = m.embed_text("Recently I've felt very depressed.").expect("embeds");
    let c = m.embed_text("The train to Berlin leaves at nine.").expect("embeds");
    assert_eq!(a.len(), features::text::MINILM_DIM);
    assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
    assert!(cos(&a, &b) > cos(&a, &c) + 0.3, "{} vs {}", cos(&a, &b), cos(&a, &c));
}

#[test]
fn a_missing_or_damaged_model_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = runtime::chain(&MiniLm::load(dir.path()).unwrap_err());
    assert!(err.contains("config.json"), "{err}");
    let installed = minilm::default_dir();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(installed.join(f), dir.path().join(f)).expect("copy");
    }
    // A download cut short.
    let weights = std::fs::read(installed.join("model.safetensors")).expect("installed");
    std::fs::write(dir.path().join("model.safetensors"), &weights[..weights.len() / 2]).expect("write");
    let err = runtime::chain(&MiniLm::load(dir.path()).unwrap_err());
    assert!(err.contains("model.safetensors"), "{err}");
    // Another architecture.
    let config = std::fs::read_to_string(installed.join("config.json")).expect("config");
    std::fs::write(dir.path().join("config.json"), config.replace("\"gelu\"", "\"relu\"")).expect("write");
    std::fs::write(dir.path().join("model.safetensors"), &weights).expect("write");
    let err = runtime::chain(&MiniLm::load(dir.path()).unwrap_err());
    assert!(err.contains("only gelu"), "{err}");
}
