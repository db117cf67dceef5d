//! Whisper's encoder and one decoder step as ONNX graphs (opset 17, standard ops), written from
//! a CTranslate2 `WhisperSpec` (revision 3) the way `minilm` writes BERT from safetensors.
//!
//! CTranslate2's layout: pre-norm layers; each self-attention's query, key and value share one
//! fused `linear_0` (`[3d, d]`, in that order) and `linear_1` is its output; a decoder layer's
//! cross-attention (`attention`) has the query in `linear_0`, key and value fused in `linear_1`
//! (`[2d, d]`) and the output in `linear_2`; feed-forward `linear_0`, exact GELU, `linear_1`;
//! layer norms with ε = 1e-5; sinusoidal position tables stored as `position_encodings`; the
//! output projection is the token embedding (an alias in `model.bin`), without bias.
//!
//! * **Encoder**: `mel [1, 80, 3000]` → two convolutions with GELU (the second strided by 2),
//!   plus positions → layers → layer norm, then every decoder layer's cross-attention keys and
//!   values, computed once per window: `cross_k [L, H, dh, 1500]` (transposed for `q · kᵀ`) and
//!   `cross_v [L, H, 1500, dh]`.
//! * **Decoder step**: one token at position `P` with the self-attention cache of the `P`
//!   tokens before it (`past_k [L, H, dh, P]`, `past_v [L, H, P, dh]`) → `logits [1, vocab]`
//!   and the cache grown by this token (`present_k`, `present_v`). One token per step keeps
//!   decoding linear and needs no causal mask.

use tract_onnx::pb::{ModelProto, TensorProto, tensor_proto::DataType};
use tract_onnx::prelude::f16;

use crate::ct2::{Ct2Error, Ct2Model};
use crate::onnx_graph::{Graph, Quantization, attr_f, attr_i, attr_ints, transpose2, typed_value_info, value_info};
use crate::whisper::mel::{N_MELS, WINDOW_FRAMES};

/// The model's sizes, read from `model.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Model width.
    pub d: usize,
    /// Attention heads.
    pub heads: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub vocab: usize,
    /// Encoder positions (1500 for 30 s).
    pub audio_ctx: usize,
    /// Decoder positions (448).
    pub text_ctx: usize,
}

impl Dims {
    pub fn head_dim(&self) -> usize {
        self.d / self.heads
    }

    /// Reads the sizes and checks the parts every graph relies on.
    pub fn read(m: &Ct2Model<'_>) -> Result<Dims, Ct2Error> {
        let bad = |name: &str, detail: String| Ct2Error::Variable { name: name.into(), detail };
        if m.spec != "WhisperSpec" {
            return Err(bad("spec", format!("{:?}, expected WhisperSpec", m.spec)));
        }
        let conv = m.variable("encoder/conv1/weight")?;
        if conv.shape.len() != 3 || conv.shape[1] != N_MELS || conv.shape[2] != 3 {
            return Err(bad("encoder/conv1/weight", format!("shape {:?}, expected [d, {N_MELS}, 3]", conv.shape)));
        }
        let d = conv.shape[0];
        let heads = m.int("encoder/num_heads")?;
        let dec_heads = m.int("decoder/num_heads")?;
        if heads <= 0 || heads != dec_heads || d % heads as usize != 0 {
            return Err(bad("num_heads", format!("encoder {heads}, decoder {dec_heads}, width {d}")));
        }
        let count =
            |prefix: &str| (0..).take_while(|l| m.has(&format!("{prefix}/layer_{l}/ffn/linear_0/weight"))).count();
        let emb = m.variable("decoder/embeddings/weight")?;
        let enc_pos = m.variable("encoder/position_encodings/encodings")?;
        let dec_pos = m.variable("decoder/position_encodings/encodings")?;
        if emb.shape.len() != 2 || emb.shape[1] != d {
            return Err(bad("decoder/embeddings/weight", format!("shape {:?}", emb.shape)));
        }
        let dims = Dims {
            d,
            heads: heads as usize,
            encoder_layers: count("encoder"),
            decoder_layers: count("decoder"),
            vocab: emb.shape[0],
            audio_ctx: enc_pos.shape.first().copied().unwrap_or(0),
            text_ctx: dec_pos.shape.first().copied().unwrap_or(0),
        };
        if dims.audio_ctx != WINDOW_FRAMES / 2
            || dims.encoder_layers == 0
            || dims.decoder_layers == 0
            || dims.text_ctx < 8
        {
            return Err(bad("layers", format!("{dims:?} is not a Whisper model with 30-s windows")));
        }
        // Every decoder flag this graph writes as fixed must have CTranslate2's Whisper value.
        for (flag, want) in [("decoder/pre_norm", 1), ("decoder/scale_embeddings", 0), ("decoder/alibi", 0)] {
            if m.has(flag) && m.int(flag)? != want {
                return Err(bad(flag, format!("{}, this graph is written for {want}", m.int(flag)?)));
            }
        }
        Ok(dims)
    }
}

/// The graph under construction with the weights it reads.
struct Writer<'m, 'a> {
    g: Graph,
    m: &'m Ct2Model<'a>,
    dims: Dims,
}

impl Writer<'_, '_> {
    /// An int64 constant shared by every node that names it.
    fn ints(&mut self, name: &str, data: &[i64]) -> String {
        if self.g.has(name) { name.into() } else { self.g.i64s(name, data) }
    }

    /// An f32 scalar shared by every node that names it.
    fn scalar(&mut self, name: &str, v: f32) -> String {
        if self.g.has(name) { name.into() } else { self.g.scalar(name, v) }
    }

    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, Ct2Error> {
        self.m.f32(name, shape)
    }

    fn layer_norm(&mut self, x: &str, name: &str) -> Result<String, Ct2Error> {
        let d = self.dims.d;
        let gamma = self.weight(&format!("{name}/gamma"), &[d])?;
        let beta = self.weight(&format!("{name}/beta"), &[d])?;
        let gamma = self.g.f32(&format!("{name}/gamma"), &[d], gamma);
        let beta = self.g.f32(&format!("{name}/beta"), &[d], beta);
        Ok(self.g.op("LayerNormalization", &[x, &gamma, &beta], vec![attr_i("axis", -1), attr_f("epsilon", 1e-5)]))
    }

    /// `x · W[rows]ᵀ + b[rows]` for a CTranslate2 linear `[out, in]` (rows: a part of a fused
    /// weight).
    fn linear_rows(
        &mut self,
        x: &str,
        name: &str,
        rows: std::ops::Range<usize>,
        total: usize,
    ) -> Result<String, Ct2Error> {
        let d_in = self.m.variable(&format!("{name}/weight"))?.shape.get(1).copied().unwrap_or(0);
        let w = self.weight(&format!("{name}/weight"), &[total, d_in])?;
        let b = self.weight(&format!("{name}/bias"), &[total])?;
        let out = rows.len();
        let part = &w[rows.start * d_in..rows.end * d_in];
        let tag = format!("{name}.{}", rows.start);
        let wt = self.g.f32(&format!("{tag}.wt"), &[d_in, out], transpose2(&[out, d_in], part));
        let mm = self.g.op("MatMul", &[x, &wt], vec![]);
        let b = self.g.f32(&format!("{tag}.b"), &[out], b[rows].to_vec());
        Ok(self.g.op("Add", &[&mm, &b], vec![]))
    }

    fn linear(&mut self, x: &str, name: &str) -> Result<String, Ct2Error> {
        let out = self.m.variable(&format!("{name}/weight"))?.shape.first().copied().unwrap_or(0);
        self.linear_rows(x, name, 0..out, out)
    }

    fn gelu(&mut self, x: &str) -> String {
        // Exact GELU: x · ½ · (1 + erf(x / √2)).
        let (half, one, sqrt2) =
            (self.scalar("gelu.half", 0.5), self.scalar("gelu.one", 1.0), self.scalar("gelu.sqrt2", 2f32.sqrt()));
        let e = self.g.op("Div", &[x, &sqrt2], vec![]);
        let e = self.g.op("Erf", &[&e], vec![]);
        let e = self.g.op("Add", &[&e, &one], vec![]);
        let e = self.g.op("Mul", &[&e, &half], vec![]);
        self.g.op("Mul", &[x, &e], vec![])
    }

    /// `[1, T, d]` → `[1, H, T, dh]` (perm `[0, 2, 1, 3]`) or `[1, H, dh, T]` (`[0, 2, 3, 1]`).
    fn heads(&mut self, x: &str, perm: &[i64]) -> String {
        let split = self.ints("shape.heads", &[1, -1, self.dims.heads as i64, self.dims.head_dim() as i64]);
        let y = self.g.op("Reshape", &[x, &split], vec![]);
        self.g.op("Transpose", &[&y], vec![attr_ints("perm", perm)])
    }

    /// softmax(q · kᵀ / √dh) · v with `q [1, H, Tq, dh]`, `kt [1, H, dh, Tk]`, `v [1, H, Tk, dh]`,
    /// merged back to `[1, Tq, d]`.
    fn attend(&mut self, q: &str, kt: &str, v: &str) -> String {
        let scale = self.scalar("attention.scale", 1.0 / (self.dims.head_dim() as f32).sqrt());
        let q = self.g.op("Mul", &[q, &scale], vec![]);
        let s = self.g.op("MatMul", &[&q, kt], vec![]);
        let a = self.g.op("Softmax", &[&s], vec![attr_i("axis", -1)]);
        let c = self.g.op("MatMul", &[&a, v], vec![]);
        let c = self.g.op("Transpose", &[&c], vec![attr_ints("perm", &[0, 2, 1, 3])]);
        let merge = self.ints("shape.merge", &[1, -1, self.dims.d as i64]);
        self.g.op("Reshape", &[&c, &merge], vec![])
    }

    /// Layer `at`'s pre-norm self-attention inputs from its fused `linear_0`: queries and values
    /// `[1, H, T, dh]`, keys transposed `[1, H, dh, T]`.
    fn self_attention_qkv(&mut self, x: &str, at: &str) -> Result<(String, String, String), Ct2Error> {
        let d = self.dims.d;
        let h = self.layer_norm(x, &format!("{at}/self_attention/layer_norm"))?;
        let fused = format!("{at}/self_attention/linear_0");
        let q = self.linear_rows(&h, &fused, 0..d, 3 * d)?;
        let k = self.linear_rows(&h, &fused, d..2 * d, 3 * d)?;
        let v = self.linear_rows(&h, &fused, 2 * d..3 * d, 3 * d)?;
        Ok((self.heads(&q, &[0, 2, 1, 3]), self.heads(&k, &[0, 2, 3, 1]), self.heads(&v, &[0, 2, 1, 3])))
    }

    fn feed_forward(&mut self, x: &str, at: &str) -> Result<String, Ct2Error> {
        let h = self.layer_norm(x, &format!("{at}/ffn/layer_norm"))?;
        let h = self.linear(&h, &format!("{at}/ffn/linear_0"))?;
        let h = self.gelu(&h);
        let h = self.linear(&h, &format!("{at}/ffn/linear_1"))?;
        Ok(self.g.op("Add", &[x, &h], vec![]))
    }

    /// Slice `[i, i + 1)` of axis 0.
    fn layer_of(&mut self, x: &str, i: usize) -> String {
        let (s, e, a) = (
            self.ints(&format!("i.{i}"), &[i as i64]),
            self.ints(&format!("i.{}", i + 1), &[i as i64 + 1]),
            self.ints("i.axis0", &[0]),
        );
        self.g.op("Slice", &[x, &s, &e, &a], vec![])
    }
}

/// The encoder graph: `mel [1, 80, 3000]` → `cross_k [L, H, dh, 1500]`, `cross_v [L, H, 1500, dh]`.
pub fn encoder(m: &Ct2Model<'_>, dims: Dims) -> Result<ModelProto, Ct2Error> {
    let mut w = Writer { g: Graph::new(Quantization::F32), m, dims };
    let d = dims.d;
    let mut x = "mel".to_string();
    for (conv, c_in, stride) in [("encoder/conv1", N_MELS, 1), ("encoder/conv2", d, 2)] {
        let k = w.weight(&format!("{conv}/weight"), &[d, c_in, 3])?;
        let b = w.weight(&format!("{conv}/bias"), &[d])?;
        let k = w.g.f32(&format!("{conv}/weight"), &[d, c_in, 3], k);
        let b = w.g.f32(&format!("{conv}/bias"), &[d], b);
        let y = w.g.op(
            "Conv",
            &[&x, &k, &b],
            vec![attr_ints("kernel_shape", &[3]), attr_ints("pads", &[1, 1]), attr_ints("strides", &[stride])],
        );
        x = w.gelu(&y);
    }
    let x = w.g.op("Transpose", &[&x], vec![attr_ints("perm", &[0, 2, 1])]); // [1, 1500, d]
    let pos = w.weight("encoder/position_encodings/encodings", &[dims.audio_ctx, d])?;
    let pos = w.g.f32("encoder/positions", &[dims.audio_ctx, d], pos);
    let mut x = w.g.op("Add", &[&x, &pos], vec![]);
    for l in 0..dims.encoder_layers {
        let at = format!("encoder/layer_{l}");
        let (q, k, v) = w.self_attention_qkv(&x, &at)?;
        let c = w.attend(&q, &k, &v);
        let o = w.linear(&c, &format!("{at}/self_attention/linear_1"))?;
        let h = w.g.op("Add", &[&x, &o], vec![]);
        x = w.feed_forward(&h, &at)?;
    }
    let memory = w.layer_norm(&x, "encoder/layer_norm")?;
    let (mut ks, mut vs) = (Vec::new(), Vec::new());
    for l in 0..dims.decoder_layers {
        let kv = format!("decoder/layer_{l}/attention/linear_1");
        let k = w.linear_rows(&memory, &kv, 0..d, 2 * d)?;
        let v = w.linear_rows(&memory, &kv, d..2 * d, 2 * d)?;
        ks.push(w.heads(&k, &[0, 2, 3, 1]));
        vs.push(w.heads(&v, &[0, 2, 1, 3]));
    }
    let ks: Vec<&str> = ks.iter().map(String::as_str).collect();
    let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
    w.g.named("Concat", &ks, "cross_k", vec![attr_i("axis", 0)]);
    w.g.named("Concat", &vs, "cross_v", vec![attr_i("axis", 0)]);
    let (ll, h, dh, t) = (dims.decoder_layers as i64, dims.heads as i64, dims.head_dim() as i64, dims.audio_ctx as i64);
    Ok(w.g.into_model(
        "whisper_encoder",
        "Whisper encoder with the decoder's cross-attention keys and values, from CTranslate2 model.bin".into(),
        vec![value_info("mel", &[Ok(1), Ok(N_MELS as i64), Ok(WINDOW_FRAMES as i64)])],
        vec![
            value_info("cross_k", &[Ok(ll), Ok(h), Ok(dh), Ok(t)]),
            value_info("cross_v", &[Ok(ll), Ok(h), Ok(t), Ok(dh)]),
        ],
    ))
}

/// One decoder step: `token [1, 1]` (int64) at position `P` with `past_k [L, H, dh, P]`,
/// `past_v [L, H, P, dh]`, `cross_k`, `cross_v` → `logits [1, vocab]`, `present_k
/// [L, H, dh, P + 1]`, `present_v [L, H, P + 1, dh]`.
pub fn decoder(m: &Ct2Model<'_>, dims: Dims) -> Result<ModelProto, Ct2Error> {
    let mut w = Writer { g: Graph::new(Quantization::F32), m, dims };
    let (d, v) = (dims.d, dims.vocab);
    // The token embedding is also the output projection. The projection's copy must have no
    // other consumer, or tract packs it for the matrix product at every step instead of once;
    // the lookup reads its own copy, kept f16 as stored (half the memory, the same values).
    let emb = w.weight("decoder/embeddings/weight", &[v, d])?;
    let table = w.g.f32("decoder/projection.t", &[d, v], transpose2(&[v, d], &emb));
    w.g.inits.push(TensorProto {
        name: "decoder/embeddings.f16".into(),
        dims: vec![v as i64, d as i64],
        data_type: DataType::Float16 as i32,
        raw_data: emb.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
        ..Default::default()
    });
    drop(emb);
    let x = w.g.op("Gather", &["decoder/embeddings.f16", "token"], vec![attr_i("axis", 0)]); // [1, 1, d]
    let x = w.g.op("Cast", &[&x], vec![attr_i("to", DataType::Float as i64)]);
    let pos = w.weight("decoder/position_encodings/encodings", &[dims.text_ctx, d])?;
    let pos = w.g.f32("decoder/positions", &[dims.text_ctx, d], pos);
    let shape = w.g.op("Shape", &["past_v"], vec![]);
    let (two, three) = (w.ints("i.2", &[2]), w.ints("i.3", &[3]));
    let p = w.g.op("Slice", &[&shape, &two, &three], vec![]); // [P]
    let row = w.g.op("Gather", &[&pos, &p], vec![attr_i("axis", 0)]); // [1, d]
    let mut x = w.g.op("Add", &[&x, &row], vec![]);
    let (mut ks, mut vs) = (Vec::new(), Vec::new());
    for l in 0..dims.decoder_layers {
        let at = format!("decoder/layer_{l}");
        let (q, k, val) = w.self_attention_qkv(&x, &at)?;
        let (pk, pv) = (w.layer_of("past_k", l), w.layer_of("past_v", l));
        let k = w.g.op("Concat", &[&pk, &k], vec![attr_i("axis", 3)]);
        let val = w.g.op("Concat", &[&pv, &val], vec![attr_i("axis", 2)]);
        let c = w.attend(&q, &k, &val);
        ks.push(k);
        vs.push(val);
        let o = w.linear(&c, &format!("{at}/self_attention/linear_1"))?;
        let x1 = w.g.op("Add", &[&x, &o], vec![]);
        let h = w.layer_norm(&x1, &format!("{at}/attention/layer_norm"))?;
        let q = w.linear(&h, &format!("{at}/attention/linear_0"))?;
        let q = w.heads(&q, &[0, 2, 1, 3]);
        let (ck, cv) = (w.layer_of("cross_k", l), w.layer_of("cross_v", l));
        let c = w.attend(&q, &ck, &cv);
        let o = w.linear(&c, &format!("{at}/attention/linear_2"))?;
        let x2 = w.g.op("Add", &[&x1, &o], vec![]);
        x = w.feed_forward(&x2, &at)?;
    }
    let ks: Vec<&str> = ks.iter().map(String::as_str).collect();
    let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
    w.g.named("Concat", &ks, "present_k", vec![attr_i("axis", 0)]);
    w.g.named("Concat", &vs, "present_v", vec![attr_i("axis", 0)]);
    let x = w.layer_norm(&x, "decoder/layer_norm")?;
    let logits = w.g.op("MatMul", &[&x, &table], vec![]); // [1, 1, vocab]
    let flat = w.ints("shape.logits", &[1, v as i64]);
    w.g.named("Reshape", &[&logits, &flat], "logits", vec![]);
    let (ll, h, dh, t) = (dims.decoder_layers as i64, dims.heads as i64, dims.head_dim() as i64, dims.audio_ctx as i64);
    Ok(w.g.into_model(
        "whisper_decoder_step",
        "One Whisper decoder step with a self-attention cache, from CTranslate2 model.bin".into(),
        vec![
            typed_value_info("token", DataType::Int64, &[Ok(1), Ok(1)]),
            value_info("past_k", &[Ok(ll), Ok(h), Ok(dh), Err("P")]),
            value_info("past_v", &[Ok(ll), Ok(h), Err("P"), Ok(dh)]),
            value_info("cross_k", &[Ok(ll), Ok(h), Ok(dh), Ok(t)]),
            value_info("cross_v", &[Ok(ll), Ok(h), Ok(t), Ok(dh)]),
        ],
        vec![
            value_info("logits", &[Ok(1), Ok(v as i64)]),
            value_info("present_k", &[Ok(ll), Ok(h), Ok(dh), Err("P1")]),
            value_info("present_v", &[Ok(ll), Ok(h), Err("P1"), Ok(dh)]),
        ],
    ))
}
