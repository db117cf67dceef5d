//! Export of the trained MIMML inference graph to ONNX (opset 17), written from Rust.
//!
//! The graph takes one session (batch 1) with the raw front-end features — normalisation is
//! baked in — and a dynamic number of segments per modality:
//!
//! | input     | shape            |
//! |-----------|------------------|
//! | `audio`   | `[1, Ta, 11]`    |
//! | `video`   | `[1, Tv, 14]`    |
//! | `text`    | `[1, Tt, 22]`    |
//! | `present` | `[1, 3]` (0/1)   |
//!
//! and gives `p_depressed` `[1, 1]`, `phq8` `[1, 1]` and `gates` `[1, 3]`. An absent modality is
//! fed as one row of zeros with `present` 0. Only standard ops: MatMul, Add, Div, Mul, Max,
//! Clip, Relu, Sigmoid, Conv, GRU (bidirectional, `linear_before_reset = 1`, the PyTorch/candle
//! cell), Transpose, Reshape, Concat, Slice, Unsqueeze, ReduceMean, ReduceSum, and
//! ConstantOfShape and EyeLike for constants built in the graph.
//!
//! The protobuf types are tract-onnx's (`tract_onnx::pb`), encoded with prost: no protoc, no
//! Python.

use prost::Message;
use tract_onnx::pb::ValueInfoProto;

use runtime::onnx_graph::{Graph, attr_i, attr_ints, attr_s, transpose2, value_info};
pub use runtime::onnx_graph::{OPSET, Quantization};

use super::config::Fusion;
use super::train::{TrainError, Trained};

pub const INPUTS: [&str; 4] = ["audio", "video", "text", "present"];
pub const OUTPUTS: [&str; 3] = ["p_depressed", "phq8", "gates"];
const SEQ_DIMS: [&str; 3] = ["Ta", "Tv", "Tt"];
const NAMES: [&str; 3] = ["audio", "video", "text"];

/// Reads a parameter of the trained model: (shape, values).
fn param(t: &Trained, name: &str) -> Result<(Vec<usize>, Vec<f32>), TrainError> {
    let data = t.varmap.data().lock().map_err(|_| TrainError::Data("parameter map poisoned".into()))?;
    let v = data.get(name).ok_or_else(|| TrainError::Data(format!("no parameter {name}")))?;
    Ok((v.dims().to_vec(), v.as_tensor().flatten_all()?.to_vec1()?))
}

/// `x [.., in] · Wᵀ + b` for a candle `Linear` named `name`.
fn linear(g: &mut Graph, t: &Trained, x: &str, name: &str) -> Result<String, TrainError> {
    let (ws, w) = param(t, &format!("{name}.weight"))?;
    let (_, b) = param(t, &format!("{name}.bias"))?;
    let wt = g.f32(&format!("{name}.wt"), &[ws[1], ws[0]], transpose2(&ws, &w));
    let bn = g.f32(&format!("{name}.b"), &[ws[0]], b);
    let mm = g.op("MatMul", &[x, &wt], vec![]);
    Ok(g.op("Add", &[&mm, &bn], vec![]))
}

/// candle/PyTorch GRU gates are (r, z, n); ONNX wants (z, r, h).
fn reorder_gates(v: &[f32], h: usize, row: usize) -> Vec<f32> {
    let block = h * row;
    [&v[block..2 * block], &v[..block], &v[2 * block..3 * block]].concat()
}

/// A bidirectional GRU over `x` `[T, 1, in]`; returns `[1, T, 2h]` (forward then backward, as
/// candle's `BiGru`).
fn bigru(g: &mut Graph, t: &Trained, x: &str, name: &str) -> Result<String, TrainError> {
    let y = bigru_onnx(g, t, x, name)?;
    let yt = g.op("Transpose", &[&y], vec![attr_ints("perm", &[2, 0, 1, 3])]); // [1, T, 2, h]
    let shape = g.i64s(&format!("{name}.shape"), &[0, 0, -1]);
    Ok(g.op("Reshape", &[&yt, &shape], vec![]))
}

/// The mean over time of a bidirectional GRU over `x` `[T, 1, in]`: `[1, 2h]` (forward then
/// backward). Taken over the GRU's own leading time axis, which needs no transpose and is a
/// plain column sum for a runtime.
fn bigru_mean(g: &mut Graph, t: &Trained, x: &str, name: &str) -> Result<String, TrainError> {
    let y = bigru_onnx(g, t, x, name)?; // [T, 2, 1, h]
    let mean = g.op("ReduceMean", &[&y], vec![attr_ints("axes", &[0]), attr_i("keepdims", 0)]); // [2, 1, h]
    let shape = g.i64s(&format!("{name}.pooled"), &[1, -1]);
    Ok(g.op("Reshape", &[&mean, &shape], vec![]))
}

/// The ONNX GRU node of a candle `BiGru` over `x` `[T, 1, in]`: its `Y`, `[T, 2, 1, h]`.
fn bigru_onnx(g: &mut Graph, t: &Trained, x: &str, name: &str) -> Result<String, TrainError> {
    let mut w = Vec::new();
    let mut r = Vec::new();
    let mut b = Vec::new();
    let mut hidden = 0;
    let mut input = 0;
    for dir in ["fwd", "bwd"] {
        let (ws, wv) = param(t, &format!("{name}.{dir}.weight_ih_l0"))?;
        let (rs, rv) = param(t, &format!("{name}.{dir}.weight_hh_l0"))?;
        let (_, bi) = param(t, &format!("{name}.{dir}.bias_ih_l0"))?;
        let (_, bh) = param(t, &format!("{name}.{dir}.bias_hh_l0"))?;
        hidden = rs[1];
        input = ws[1];
        w.extend(reorder_gates(&wv, hidden, input));
        r.extend(reorder_gates(&rv, hidden, hidden));
        b.extend(reorder_gates(&bi, hidden, 1));
        b.extend(reorder_gates(&bh, hidden, 1));
    }
    let wn = g.f32(&format!("{name}.W"), &[2, 3 * hidden, input], w);
    let rn = g.f32(&format!("{name}.R"), &[2, 3 * hidden, hidden], r);
    let bn = g.f32(&format!("{name}.B"), &[2, 6 * hidden], b);
    Ok(g.op(
        "GRU",
        &[x, &wn, &rn, &bn],
        vec![
            attr_i("hidden_size", hidden as i64),
            attr_s("direction", "bidirectional"),
            attr_i("linear_before_reset", 1),
        ],
    ))
}

/// Conv1d over `x` `[1, C, T]` with the candle `Conv1d` named `name` (padding k/2), then ReLU.
fn conv_relu(g: &mut Graph, t: &Trained, x: &str, name: &str) -> Result<String, TrainError> {
    let (ws, w) = param(t, &format!("{name}.weight"))?;
    let (_, b) = param(t, &format!("{name}.bias"))?;
    let k = ws[2];
    let wn = g.f32(&format!("{name}.w"), &ws, w);
    let bn = g.f32(&format!("{name}.b"), &[ws[0]], b);
    let pad = (k / 2) as i64;
    let c = g.op("Conv", &[x, &wn, &bn], vec![attr_ints("kernel_shape", &[k as i64]), attr_ints("pads", &[pad, pad])]);
    Ok(g.op("Relu", &[&c], vec![]))
}

/// The ONNX model of `t`, encoded, with f32 weights.
pub fn to_onnx(t: &Trained, version: &str) -> Result<Vec<u8>, TrainError> {
    to_onnx_quantized(t, version, Quantization::F32)
}

/// The ONNX model of `t`, encoded, with weights stored as `quantization` says.
pub fn to_onnx_quantized(t: &Trained, version: &str, quantization: Quantization) -> Result<Vec<u8>, TrainError> {
    let cfg = &t.model.cfg;
    let mut g = Graph::new(quantization);
    let mut present_m = Vec::new();
    for m in 0..3 {
        let starts = g.i64s(&format!("present.start{m}"), &[m as i64]);
        let ends = g.i64s(&format!("present.end{m}"), &[m as i64 + 1]);
        let axes = g.i64s(&format!("present.axis{m}"), &[1]);
        present_m.push(g.op("Slice", &["present", &starts, &ends, &axes], vec![])); // [1, 1]
    }
    let (lo, hi) = (g.scalar("clip.lo", -5.0), g.scalar("clip.hi", 5.0));
    let mut u = Vec::new();
    for m in 0..3 {
        let norm = &t.spec.norms[m];
        let d = t.spec.dims[m];
        // (x − mean) / sd as x · diag(1/sd) − mean/sd: a MatMul with a bias, which runtimes
        // fuse into one kernel, where a broadcast Sub and Div each take a slow generic path in
        // tract. The diagonal is built in the graph (EyeLike · 1/sd, folded at load), so the
        // file stores d numbers, not d².
        let name = NAMES[m];
        let shape = g.i64s(&format!("norm_{name}.square"), &[d as i64, d as i64]);
        let zeros = g.op("ConstantOfShape", &[&shape], vec![]);
        let eye = g.op("EyeLike", &[&zeros], vec![attr_i("dtype", 1)]); // float
        let inv = g.f32(&format!("norm_{name}.inv_sd"), &[d], norm.sd.iter().map(|s| 1.0 / s).collect());
        let shift =
            g.f32(&format!("norm_{name}.shift"), &[d], norm.mean.iter().zip(&norm.sd).map(|(m, s)| -m / s).collect());
        let scale = g.op("Mul", &[&eye, &inv], vec![]);
        // tract's shape inference does not see through EyeLike; the Reshape states the shape.
        let scale = g.op("Reshape", &[&scale, &shape], vec![]);
        let x = g.op("MatMul", &[name, &scale], vec![]);
        let x = g.op("Add", &[&x, &shift], vec![]);
        let x = g.op("Clip", &[&x, &lo, &hi], vec![]);
        let enc = format!("enc_{}", NAMES[m]);
        let p = linear(&mut g, t, &x, &format!("{enc}.proj"))?;
        let p = g.op("Relu", &[&p], vec![]);
        let p = g.op("Transpose", &[&p], vec![attr_ints("perm", &[0, 2, 1])]); // [1, H, T]
        let c = conv_relu(&mut g, t, &p, &format!("{enc}.conv"))?;
        let c = g.op("Transpose", &[&c], vec![attr_ints("perm", &[2, 0, 1])]); // [T, 1, H]
        let pooled = bigru_mean(&mut g, t, &c, &format!("{enc}.gru"))?; // [1, H]
        u.push(g.op("Mul", &[&pooled, &present_m[m]], vec![]));
    }
    let one = g.scalar("one", 1.0);
    let tiny = g.scalar("tiny", 1e-6);
    let axis1 = g.i64s("axes.1", &[1]);
    let present_sum = g.op("ReduceSum", &["present", &axis1], vec![attr_i("keepdims", 1)]); // [1, 1]
    let (fused, gates) = match cfg.fusion {
        Fusion::Gated => {
            let ctx = g.op("Concat", &[&u[0], &u[1], &u[2], "present"], vec![attr_i("axis", 1)]);
            let axis0 = g.i64s("axes.0", &[0]);
            let mut gated = Vec::new();
            let mut gmeans = Vec::new();
            for m in 0..3 {
                let z = linear(&mut g, t, &ctx, &format!("gate_{}", NAMES[m]))?;
                let s = g.op("Sigmoid", &[&z], vec![]);
                let gm = g.op("Mul", &[&s, &present_m[m]], vec![]);
                gmeans.push(g.op("ReduceMean", &[&gm], vec![attr_ints("axes", &[1]), attr_i("keepdims", 1)]));
                let p = g.op("Mul", &[&gm, &u[m]], vec![]);
                gated.push(g.op("Unsqueeze", &[&p, &axis0], vec![])); // [1, 1, H]
            }
            let seq = g.op("Concat", &[&gated[0], &gated[1], &gated[2]], vec![attr_i("axis", 0)]); // [3, 1, H]
            let y = bigru(&mut g, t, &seq, "fusion_gru")?; // [1, 3, H]
            let y = g.op("Transpose", &[&y], vec![attr_ints("perm", &[0, 2, 1])]); // [1, H, 3]
            let c = conv_relu(&mut g, t, &y, "fusion_conv")?;
            let pm = g.op("Unsqueeze", &["present", &axis1], vec![]); // [1, 1, 3]
            let masked = g.op("Mul", &[&c, &pm], vec![]);
            let axis2 = g.i64s("axes.2", &[2]);
            let sum = g.op("ReduceSum", &[&masked, &axis2], vec![attr_i("keepdims", 0)]); // [1, H]
            let n = g.op("Max", &[&present_sum, &one], vec![]);
            let fused = g.op("Div", &[&sum, &n], vec![]);
            let gcat = g.op("Concat", &[&gmeans[0], &gmeans[1], &gmeans[2]], vec![attr_i("axis", 1)]);
            let gsum = g.op("ReduceSum", &[&gcat, &axis1], vec![attr_i("keepdims", 1)]);
            let gsum = g.op("Max", &[&gsum, &tiny], vec![]);
            (fused, g.op("Div", &[&gcat, &gsum], vec![]))
        }
        Fusion::Concat => {
            let cat = g.op("Concat", &[&u[0], &u[1], &u[2]], vec![attr_i("axis", 1)]);
            let z = linear(&mut g, t, &cat, "concat")?;
            let fused = g.op("Relu", &[&z], vec![]);
            let n = g.op("Max", &[&present_sum, &one], vec![]);
            (fused, g.op("Div", &["present", &n], vec![]))
        }
    };
    let logit = linear(&mut g, t, &fused, "head")?;
    g.named("Sigmoid", &[&logit], "p_depressed", vec![]);
    let z = linear(&mut g, t, &fused, "phq")?;
    let sd = g.scalar("phq.sd", t.spec.phq_sd);
    let mean = g.scalar("phq.mean", t.spec.phq_mean);
    let z = g.op("Mul", &[&z, &sd], vec![]);
    let z = g.op("Add", &[&z, &mean], vec![]);
    let (zero, top) = (g.scalar("phq.lo", 0.0), g.scalar("phq.hi", 24.0));
    g.named("Clip", &[&z, &zero, &top], "phq8", vec![]);
    g.named("Identity", &[&gates], "gates", vec![]);

    let mut inputs: Vec<ValueInfoProto> =
        (0..3).map(|m| value_info(NAMES[m], &[Ok(1), Err(SEQ_DIMS[m]), Ok(t.spec.dims[m] as i64)])).collect();
    inputs.push(value_info("present", &[Ok(1), Ok(3)]));
    let outputs = vec![
        value_info("p_depressed", &[Ok(1), Ok(1)]),
        value_info("phq8", &[Ok(1), Ok(1)]),
        value_info("gates", &[Ok(1), Ok(3)]),
    ];
    let doc = format!("MIMML {version}; feature schema {}", t.schema());
    let model = g.into_model("mimml", doc, inputs, outputs);
    Ok(model.encode_to_vec())
}
