//! A whole-sequence GRU op for tract, for the small hidden sizes MIMML uses.
//!
//! Written by hand because no crate does it fast enough: tract 0.23 turns an ONNX `GRU` into
//! one op per direction plus the transposes and concatenation around them, and its fused
//! `GruSeq` spends about 0.75 µs per timestep at hidden size 16 (it dispatches its matmul
//! kernel, repacks the state and slices `ndarray` views every step); sequences shorter than 4,
//! like the fusion block's 3 modalities, keep a per-step `Scan`. The GRUs were over half of a
//! session's inference time. [`Gru`] computes the same recurrence (ONNX `GRU`,
//! `linear_before_reset = 1`, the PyTorch/candle cell) for both directions in one op, in the
//! ONNX output layout: both directions step together, so their gates go through
//! tract-linalg's vectorised sigmoid and tanh (the kernels `GruSeq` uses) in one call each,
//! and the recurrent weight is rearranged once, at load, so a step's product keeps its sums in
//! registers.
//!
//! It plugs into tract-onnx's GRU import ([`register`]): tract's own importer still parses
//! the node and infers its shapes; where this op does not apply (hidden size above
//! [`MAX_HIDDEN`], `linear_before_reset = 0`, explicit activations, `sequence_lens`,
//! `initial_h`, batch-first layout) the node is wired exactly as tract wires it — except a
//! `direction = "reverse"` GRU, which is refused there: tract 0.23.9's import runs it forwards
//! (found while testing this op), and a wrong answer is worse than a clear error.

use tract_onnx::model::ParsingContext;
use tract_onnx::ops::rec::common::CommonRec;
use tract_onnx::ops::rec::gru::GRU;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ndarray::{Array2, Ix2, Ix3, linalg::general_mat_mul};
use tract_onnx::tract_core::tract_linalg::routines::Func;
use tract_onnx::tract_hir::internal::{Expansion, InferenceOp, InferenceResult, Solver, TensorProxy, expand};

/// Above this hidden size tract's `GruSeq`, which packs `R` for its matmul kernels, wins.
pub const MAX_HIDDEN: usize = 64;

/// Makes `onnx` import ONNX `GRU` nodes with [`Gru`] where it applies.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("GRU", import);
}

/// What tract-onnx's own GRU import builds (it too takes sigmoid and tanh whatever the node
/// says), wrapped so that [`GruImport::wire`] decides between our op and tract's wiring.
fn import(_ctx: &ParsingContext, pb: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let attr = |name: &str| pb.attribute.iter().find(|a| a.name == name);
    let linear_before_reset = attr("linear_before_reset").is_some_and(|a| a.i != 0);
    let gru = GRU {
        f: Box::new(tract_onnx::tract_hir::ops::nn::sigmoid()),
        g: Box::new(tract_onnx::tract_hir::ops::math::tanh()),
        linear_before_reset,
    };
    let common = CommonRec::from_node_and_options(pb, 3, 0, Box::new(gru))?;
    Ok((
        expand(GruImport {
            common,
            reverse: attr("direction").is_some_and(|a| a.s == b"reverse"),
            cell: linear_before_reset && attr("activations").is_none(),
        }),
        vec![],
    ))
}

fn unsupported_reverse(node: &str) -> String {
    format!(
        "GRU {node:?}: direction \"reverse\" is supported only with linear_before_reset = 1, sigmoid/tanh, \
         hidden size up to {MAX_HIDDEN}, constant weights, no sequence_lens or initial_h (tract's own import \
         would run it forwards)"
    )
}

/// tract's import of the node (`common`), wired as a [`Gru`] where that applies.
#[derive(Debug, Clone)]
struct GruImport {
    common: CommonRec,
    /// `direction = "reverse"`.
    reverse: bool,
    /// The cell is the one [`Gru`] computes: `linear_before_reset = 1`, default activations.
    cell: bool,
}

impl Expansion for GruImport {
    fn name(&self) -> StaticName {
        "GRU".into()
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    fn nboutputs(&self) -> TractResult<usize> {
        self.common.nboutputs()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.common.rules(s, inputs, outputs)
    }

    fn wire(&self, prefix: &str, target: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let c = &self.common;
        let r = target.outlet_fact(inputs[2])?;
        let hidden = r.shape[2].to_usize().ok().filter(|h| *h <= MAX_HIDDEN);
        let directions = r.shape[0].to_usize()?;
        let plain = self.cell
            && !c.batch_first
            && c.optional_sequence_lens_input.is_none()
            && c.optional_initial_h_input.is_none()
            && c.optional_initial_c_input.is_none()
            && c.optional_p_input.is_none()
            && target.outlet_fact(inputs[0])?.datum_type == f32::datum_type();
        let konst = |slot: usize| target.outlet_fact(inputs[slot]).ok().and_then(|f| f.konst.clone());
        let bias = c.optional_bias_input.map(konst);
        let (Some(hidden), true, Some(w), Some(r), None | Some(Some(_))) = (hidden, plain, konst(1), konst(2), &bias)
        else {
            ensure!(!self.reverse, "{}", unsupported_reverse(prefix));
            return c.wire(prefix, target, inputs);
        };
        let backward = match (directions, self.reverse) {
            (2, _) => vec![false, true],
            (_, reverse) => vec![reverse],
        };
        let op = Gru::new(hidden, &backward, &w, &r, bias.flatten().as_deref())?;
        let outs = target.wire_node(prefix, op, &inputs[..1])?;
        let mut result = tvec!(outs[0]; self.nboutputs()?);
        if let Some(slot) = c.optional_y_output {
            result[slot] = outs[0];
        }
        if let Some(slot) = c.optional_y_h_output {
            result[slot] = outs[1];
        }
        Ok(result)
    }
}

/// Gate rows summed together in one step's recurrent product: 16 sums are four SSE or NEON
/// registers (two AVX), enough independent adds to hide their latency.
const LANES: usize = 16;

/// `out = rb + R·h`, with R in [`LANES`]-row blocks (see [`Direction::rt`]). A block's
/// LANES sums stay in registers over the whole of `h`, as independent chains of adds, each in
/// the order k = 0, 1, …
///
/// Compiled twice on x86-64: for the baseline (SSE2) and for AVX2 with fused multiply-adds,
/// picked at run time; aarch64 (the Raspberry Pi and the Jetson) has NEON as its baseline.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn recurrent_product(rt: &[f32], rb: &[f32], h: &[f32], out: &mut [f32]) {
    // A fused multiply-add where the CPU has one, a multiply and an add where it would be a
    // (slow) library call. aarch64 has it in its base instruction set ("fma" is an x86 feature
    // name; asking for it on another architecture fails to compile).
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    const FUSED: bool = multiversion::target::selected_target!().supports_feature_str("fma");
    #[cfg(target_arch = "aarch64")]
    const FUSED: bool = true;
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    const FUSED: bool = false;
    let block_len = h.len() * LANES;
    for ((block, bias), out) in rt.chunks_exact(block_len).zip(rb.chunks_exact(LANES)).zip(out.chunks_exact_mut(LANES))
    {
        let mut acc = [0f32; LANES];
        acc.copy_from_slice(bias);
        for (row, hk) in block.chunks_exact(LANES).zip(h) {
            for (a, r) in acc.iter_mut().zip(row) {
                *a = if FUSED { hk.mul_add(*r, *a) } else { *a + hk * r };
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// One direction's recurrent weights, arranged for the step loop.
#[derive(Debug, Clone, PartialEq)]
struct Direction {
    backward: bool,
    /// `R` in [`LANES`]-row blocks, each stored k-major: block c holds `R[c·LANES + l][k]` at
    /// `[k·LANES + l]` (3h padded to a multiple of LANES with zero rows).
    rt: Vec<f32>,
    /// The R-side bias, padded like `rt`'s rows.
    rb: Vec<f32>,
}

/// An ONNX `GRU` (`linear_before_reset = 1`, sigmoid and tanh, no `sequence_lens`, no
/// `initial_h`, constant weights), all its directions in one op. Input `X` `[T, batch, in]`;
/// outputs `Y` `[T, D, batch, h]` and `Y_h` `[D, batch, h]`, as ONNX. Gates in ONNX order z,
/// r, h. The weights are arranged once, when the graph is built. Stateless: every run
/// starts from zeros, the ONNX contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Gru {
    hidden: usize,
    input: usize,
    /// `W` of all directions, `[D·3h, in]`.
    w: Array2<f32>,
    /// The W-side bias of all directions, `[D·3h]` (zeros without `B`).
    wb: Vec<f32>,
    directions: Vec<Direction>,
}

impl Eq for Gru {}

impl std::hash::Hash for Gru {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.hidden.hash(state);
        self.input.hash(state);
        for v in self.w.iter().chain(&self.wb).chain(self.directions.iter().flat_map(|d| d.rt.iter().chain(&d.rb))) {
            v.to_bits().hash(state);
        }
    }
}

impl Gru {
    /// From ONNX's `W` `[D, 3h, in]`, `R` `[D, 3h, h]` and `B` `[D, 6h]`; `backward` says,
    /// per direction, whether it runs the sequence backwards.
    fn new(hidden: usize, backward: &[bool], w: &Tensor, r: &Tensor, b: Option<&Tensor>) -> TractResult<Gru> {
        let (h, dirs) = (hidden, backward.len());
        let w = w.to_plain_array_view::<f32>()?.into_dimensionality::<Ix3>()?;
        let r = r.to_plain_array_view::<f32>()?.into_dimensionality::<Ix3>()?;
        let input = w.shape()[2];
        ensure!(w.shape() == [dirs, 3 * h, input], "GRU W is {:?}, expected [{dirs}, {}, {input}]", w.shape(), 3 * h);
        ensure!(r.shape() == [dirs, 3 * h, h], "GRU R is {:?}, expected [{dirs}, {}, {h}]", r.shape(), 3 * h);
        let b = match b {
            Some(b) => {
                let b = b.to_plain_array_view::<f32>()?.into_dimensionality::<Ix2>()?;
                ensure!(b.shape() == [dirs, 6 * h], "GRU B is {:?}, expected [{dirs}, {}]", b.shape(), 6 * h);
                b.to_owned()
            }
            None => Array2::zeros((dirs, 6 * h)),
        };
        let blocks = (3 * h).div_ceil(LANES);
        let directions = backward
            .iter()
            .enumerate()
            .map(|(d, &backward)| {
                let mut rt = vec![0f32; blocks * h * LANES];
                for g in 0..3 * h {
                    for k in 0..h {
                        rt[((g / LANES) * h + k) * LANES + g % LANES] = r[(d, g, k)];
                    }
                }
                let mut rb = vec![0f32; blocks * LANES];
                for (g, o) in rb.iter_mut().take(3 * h).enumerate() {
                    *o = b[(d, 3 * h + g)];
                }
                Direction { backward, rt, rb }
            })
            .collect();
        Ok(Gru {
            hidden,
            input,
            w: w.to_shape((dirs * 3 * h, input))?.to_owned(),
            wb: (0..dirs).flat_map(|d| (0..3 * h).map(move |g| (d, g))).map(|(d, g)| b[(d, g)]).collect(),
            directions,
        })
    }
}

impl Op for Gru {
    fn name(&self) -> StaticName {
        "Gru".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let backward: Vec<bool> = self.directions.iter().map(|d| d.backward).collect();
        Ok(vec![format!("hidden={} input={} backward={backward:?}", self.hidden, self.input)])
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for Gru {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (h, dirs) = (self.hidden, self.directions.len());
        let x = inputs[0].to_plain_array_view::<f32>()?.into_dimensionality::<Ix3>()?;
        let (t_len, batch, in_size) = x.dim();
        ensure!(in_size == self.input, "GRU X has {in_size} features, W takes {}", self.input);

        // The input side for every step and direction at once:
        // xw[t·batch + b][d·3h + g] = X[t, b]·W[d, g] + Wb[d, g].
        let x_rows = x.to_shape((t_len * batch, in_size))?;
        let mut xw = Array2::<f32>::zeros((t_len * batch, dirs * 3 * h));
        xw.rows_mut().into_iter().for_each(|mut row| row.iter_mut().zip(&self.wb).for_each(|(o, b)| *o = *b));
        general_mat_mul(1.0, &x_rows, &self.w.t(), 1.0, &mut xw);
        let xw = xw.as_slice().context("input product not contiguous")?;

        let blocks = (3 * h).div_ceil(LANES);
        let sigmoid = Func::Sigmoid.ew_f32()?;
        let tanh = Func::Tanh.ew_f32()?;
        let mut y = vec![0f32; t_len * dirs * batch * h];
        let mut y_h = vec![0f32; dirs * batch * h];
        // Per direction: its state, its recurrent product; and all directions' z and r
        // gates, then all their candidates, side by side for one activation call each.
        let mut ht = vec![0f32; dirs * h];
        let mut rh = vec![0f32; dirs * blocks * LANES];
        // In tract tensors: aligned for tract-linalg's kernels, which otherwise copy through a
        // scratch buffer (a 64-value sigmoid: 62 ns on a Vec, 22 ns aligned, on this machine).
        let mut zr_tensor = Tensor::zero::<f32>(&[dirs * 2 * h])?;
        let mut n_tensor = Tensor::zero::<f32>(&[dirs * h])?;
        let mut zr_ram = zr_tensor.try_as_plain_ram_mut()?;
        let mut n_ram = n_tensor.try_as_plain_ram_mut()?;
        let zr = zr_ram.as_slice_mut::<f32>()?;
        let n = n_ram.as_slice_mut::<f32>()?;
        for b in 0..batch {
            ht.fill(0.0);
            for step in 0..t_len {
                let at = |dir: &Direction| if dir.backward { t_len - 1 - step } else { step };
                let x_of = |d: usize, dir: &Direction| &xw[(at(dir) * batch + b) * dirs * 3 * h + d * 3 * h..][..3 * h];
                for (d, dir) in self.directions.iter().enumerate() {
                    let rh = &mut rh[d * blocks * LANES..(d + 1) * blocks * LANES];
                    recurrent_product(&dir.rt, &dir.rb, &ht[d * h..(d + 1) * h], rh);
                    let zr = zr[d * 2 * h..(d + 1) * 2 * h].iter_mut();
                    for ((o, xv), rv) in zr.zip(&x_of(d, dir)[..2 * h]).zip(&rh[..2 * h]) {
                        *o = xv + rv;
                    }
                }
                sigmoid.run(zr)?;
                for (d, dir) in self.directions.iter().enumerate() {
                    let reset = &zr[d * 2 * h + h..(d + 1) * 2 * h];
                    let rn = &rh[d * blocks * LANES + 2 * h..][..h];
                    let n = n[d * h..(d + 1) * h].iter_mut();
                    for (((o, xv), rv), rn) in n.zip(&x_of(d, dir)[2 * h..]).zip(reset).zip(rn) {
                        *o = xv + rv * rn;
                    }
                }
                tanh.run(n)?;
                for (d, dir) in self.directions.iter().enumerate() {
                    let z = &zr[d * 2 * h..d * 2 * h + h];
                    let state = &mut ht[d * h..(d + 1) * h];
                    for ((s, nv), zv) in state.iter_mut().zip(&n[d * h..(d + 1) * h]).zip(z) {
                        *s = nv + zv * (*s - nv);
                    }
                    y[((at(dir) * dirs + d) * batch + b) * h..][..h].copy_from_slice(state);
                }
            }
            for d in 0..dirs {
                y_h[(d * batch + b) * h..][..h].copy_from_slice(&ht[d * h..(d + 1) * h]);
            }
        }
        Ok(tvec!(
            Tensor::from_shape(&[t_len, dirs, batch, h], &y)?.into_tvalue(),
            Tensor::from_shape(&[dirs, batch, h], &y_h)?.into_tvalue()
        ))
    }
}

impl TypedOp for Gru {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(x.datum_type == f32::datum_type(), "Gru computes in f32, got {:?}", x.datum_type);
        let (t, batch) = (x.shape[0].clone(), x.shape[1].clone());
        let (dirs, h) = (self.directions.len().to_dim(), self.hidden.to_dim());
        Ok(tvec!(f32::fact([t, dirs.clone(), batch.clone(), h.clone()]), f32::fact([dirs, batch, h])))
    }

    tract_onnx::tract_core::as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx_graph::{Graph, Quantization, attr_i, attr_s, value_info};
    use tract_onnx::pb::ModelProto;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// One ONNX GRU over `X` `[T, 1, input]`, outputs `Y` and `Y_h`.
    fn model(direction: &str, dirs: usize, h: usize, input: usize) -> ModelProto {
        let mut g = Graph::new(Quantization::F32);
        let w = g.f32("W", &[dirs, 3 * h, input], values(dirs * 3 * h * input, 1));
        let r = g.f32("R", &[dirs, 3 * h, h], values(dirs * 3 * h * h, 2));
        let b = g.f32("B", &[dirs, 6 * h], values(dirs * 6 * h, 3));
        g.nodes.push(tract_onnx::pb::NodeProto {
            op_type: "GRU".into(),
            input: vec!["X".into(), w, r, b],
            output: vec!["Y".into(), "Y_h".into()],
            attribute: vec![
                attr_i("hidden_size", h as i64),
                attr_s("direction", direction),
                attr_i("linear_before_reset", 1),
            ],
            ..Default::default()
        });
        let inputs = vec![value_info("X", &[Err("T"), Ok(1), Ok(input as i64)])];
        let outputs = vec![
            value_info("Y", &[Err("T"), Ok(dirs as i64), Ok(1), Ok(h as i64)]),
            value_info("Y_h", &[Ok(dirs as i64), Ok(1), Ok(h as i64)]),
        ];
        g.into_model("gru", String::new(), inputs, outputs)
    }

    /// The ONNX GRU (`linear_before_reset = 1`), one step at a time, in plain f64 arithmetic:
    /// `Y` `[T, D, 1, h]` and `Y_h` `[D, 1, h]`, flattened.
    fn reference(backward: &[bool], h: usize, input: usize, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (dirs, t_len) = (backward.len(), x.len() / input);
        let (w, r, b) = (values(dirs * 3 * h * input, 1), values(dirs * 3 * h * h, 2), values(dirs * 6 * h, 3));
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut y = vec![0f32; t_len * dirs * h];
        let mut y_h = vec![0f32; dirs * h];
        for (d, &back) in backward.iter().enumerate() {
            let mut state = vec![0f64; h];
            for step in 0..t_len {
                let t = if back { t_len - 1 - step } else { step };
                let gate = |g: usize| -> (f64, f64) {
                    let xw: f64 = (0..input)
                        .map(|k| f64::from(w[(d * 3 * h + g) * input + k]) * f64::from(x[t * input + k]))
                        .sum::<f64>()
                        + f64::from(b[d * 6 * h + g]);
                    let rh: f64 = (0..h).map(|k| f64::from(r[(d * 3 * h + g) * h + k]) * state[k]).sum::<f64>()
                        + f64::from(b[d * 6 * h + 3 * h + g]);
                    (xw, rh)
                };
                let next: Vec<f64> = (0..h)
                    .map(|j| {
                        let (xz, rz) = gate(j);
                        let (xr, rr) = gate(h + j);
                        let (xn, rn) = gate(2 * h + j);
                        let (z, reset) = (sigmoid(xz + rz), sigmoid(xr + rr));
                        let n = (xn + reset * rn).tanh();
                        (1.0 - z) * n + z * state[j]
                    })
                    .collect();
                state = next;
                for j in 0..h {
                    y[(t * dirs + d) * h + j] = state[j] as f32;
                }
            }
            for j in 0..h {
                y_h[d * h + j] = state[j] as f32;
            }
        }
        (y, y_h)
    }

    /// Runs `proto` on `x` with `onnx`; also says whether the plan holds our [`Gru`].
    fn run(onnx: &tract_onnx::Onnx, proto: &ModelProto, x: &[f32], input: usize) -> (Vec<f32>, Vec<f32>, bool) {
        let t = x.len() / input;
        let m = onnx
            .model_for_proto_model(proto)
            .and_then(|m| m.with_input_fact(0, f32::fact([t, 1, input]).into()))
            .and_then(|m| m.into_optimized())
            .expect("prepares");
        let ours = m.nodes().iter().any(|n| n.op_is::<Gru>());
        let out =
            m.into_runnable().and_then(|p| p.run(tvec!(Tensor::from_shape(&[t, 1, input], x)?.into()))).expect("runs");
        let flat = |i: usize| out[i].to_plain_array_view::<f32>().expect("f32").iter().copied().collect();
        (flat(0), flat(1), ours)
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    /// Every direction, sequence lengths from 1 (tract's importer would inline a one-step
    /// `Scan`) through 3 (below tract's own fused op) to 40, and a hidden size that is not a
    /// multiple of the op's register blocks: our op against the recurrence written out.
    #[test]
    fn the_gru_op_computes_the_onnx_recurrence() {
        let (h, input) = (12, 5);
        let mut ours = tract_onnx::onnx();
        register(&mut ours);
        for (direction, backward) in
            [("forward", vec![false]), ("reverse", vec![true]), ("bidirectional", vec![false, true])]
        {
            let proto = model(direction, backward.len(), h, input);
            for t in [1, 3, 40] {
                let x = values(t * input, t);
                let (want_y, want_h) = reference(&backward, h, input, &x);
                let (y, y_h, used) = run(&ours, &proto, &x, input);
                assert!(used, "{direction}, T = {t}: the plan does not use Gru");
                let d = worst(&y, &want_y).max(worst(&y_h, &want_h));
                assert!(d <= 2e-6, "{direction}, T = {t}: |Δ| = {d}");
            }
        }
    }

    /// Where both apply, our op and tract's own import agree.
    #[test]
    fn the_gru_op_agrees_with_tracts_import() {
        let (h, input) = (16, 9);
        let mut ours = tract_onnx::onnx();
        register(&mut ours);
        let proto = model("bidirectional", 2, h, input);
        let x = values(32 * input, 4);
        let (y, y_h, used) = run(&ours, &proto, &x, input);
        let (ty, ty_h, tract_used) = run(&tract_onnx::onnx(), &proto, &x, input);
        assert!(used && !tract_used);
        let d = worst(&y, &ty).max(worst(&y_h, &ty_h));
        assert!(d <= 1e-5, "|Δ| = {d}");
    }

    /// A reverse GRU this op does not cover is refused, not run forwards by tract's import.
    #[test]
    fn a_reverse_gru_tract_would_run_forwards_is_refused() {
        let mut ours = tract_onnx::onnx();
        register(&mut ours);
        let err = ours
            .model_for_proto_model(&model("reverse", 1, MAX_HIDDEN + 1, 3))
            .and_then(|m| m.into_typed())
            .expect_err("refused");
        assert!(format!("{err:#}").contains("reverse"), "{err:#}");
    }

    /// What the op does not cover is left to tract: here a hidden size above [`MAX_HIDDEN`].
    #[test]
    fn large_hidden_sizes_stay_with_tract() {
        let mut ours = tract_onnx::onnx();
        register(&mut ours);
        let (h, input) = (MAX_HIDDEN + 1, 3);
        let x = values(4 * input, 5);
        let (y, _, used) = run(&ours, &model("forward", 1, h, input), &x, input);
        assert!(!used);
        let (want, _) = reference(&[false], h, input, &x);
        assert!(worst(&y, &want) <= 2e-6);
    }
}
