//! A whole-sequence GRU op for tract, for the small hidden sizes MIMML uses.
//!
//! Written by hand because no crate does it fast enough: tract 0.23's own fused `GruSeq`
//! spends about 0.75 µs per timestep at hidden size 16 (it dispatches its matmul kernel,
//! repacks the state and slices `ndarray` views every step), and its importer keeps the
//! per-step `Scan` for sequences shorter than 4, like the fusion block's 3 modalities. Six
//! `GruSeq`s and two `Scan`s were over half of a session's inference time. [`SmallGruSeq`]
//! computes the same recurrence (ONNX `GRU`, `linear_before_reset = 1`, the PyTorch/candle
//! cell) with the recurrent weight transposed once per run so every step is a few
//! contiguous axpys, and tract-linalg's vectorised sigmoid and tanh, the kernels `GruSeq`
//! uses.
//!
//! It plugs into tract-onnx's own GRU importer ([`register`]): the importer still parses
//! the node, checks it and wires everything around the recurrence; only the op it fuses
//! the recurrence into is ours. A graph with a symbolic sequence length keeps tract's
//! `Scan` (the fused form needs a concrete one), and so does anything this op does not
//! cover (hidden size above [`MAX_HIDDEN`], `linear_before_reset = 0`).

use tract_onnx::model::ParsingContext;
use tract_onnx::ops::rec::common::{CommonRec, WireBody};
use tract_onnx::ops::rec::gru::GRU;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ndarray::{Array2, Axis, Ix3, linalg::general_mat_mul};
use tract_onnx::tract_core::tract_linalg::routines::Func;
use tract_onnx::tract_hir::internal::{InferenceOp, expand};

/// Gate rows summed together in one step's recurrent product.
const LANES: usize = 8;

/// `out = rb + R·h`, with R in [`LANES`]-row blocks (see `eval`). The sums for one block
/// stay in registers over the whole of `h`, in the order k = 0, 1, …
fn recurrent_product(rt: &[f32], rb: &[f32], h: &[f32], out: &mut [f32]) {
    let block_len = h.len() * LANES;
    for ((block, bias), out) in rt.chunks_exact(block_len).zip(rb.chunks_exact(LANES)).zip(out.chunks_exact_mut(LANES))
    {
        let mut acc = [0f32; LANES];
        acc.copy_from_slice(bias);
        for (row, hk) in block.chunks_exact(LANES).zip(h) {
            for (a, r) in acc.iter_mut().zip(row) {
                *a += hk * r;
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// Above this hidden size tract's `GruSeq`, which packs `R` for its matmul kernels, wins.
pub const MAX_HIDDEN: usize = 64;

/// Makes `onnx` import ONNX `GRU` nodes with [`SmallGruSeq`] where it applies.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("GRU", import);
}

/// tract-onnx's GRU import (same parsing, same checks, same wiring), fusing into
/// [`SmallGruSeq`]. Nodes with explicit activations go to tract's importer unchanged.
fn import(ctx: &ParsingContext, pb: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if pb.attribute.iter().any(|a| a.name == "activations") {
        return tract_onnx::ops::rec::gru::gru(ctx, pb);
    }
    let gru = GRU {
        f: Box::new(tract_onnx::tract_hir::ops::nn::sigmoid()),
        g: Box::new(tract_onnx::tract_hir::ops::math::tanh()),
        linear_before_reset: pb.get_attr_opt::<i64>("linear_before_reset")?.is_some_and(|v| v != 0),
    };
    let common = CommonRec::from_node_and_options(pb, 3, 0, Box::new(Small(gru)))?;
    Ok((expand(common), vec![]))
}

/// tract's GRU body, fused into [`SmallGruSeq`] instead of `GruSeq`.
#[derive(Debug, Clone)]
struct Small(GRU);

impl WireBody for Small {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn wire_body(&self, prefix: &str, body: &mut TypedModel) -> TractResult<()> {
        self.0.wire_body(prefix, body)
    }

    fn w_b_multipliers(&self) -> (usize, usize) {
        self.0.w_b_multipliers()
    }

    fn have_extra_c_state(&self) -> bool {
        self.0.have_extra_c_state()
    }

    fn fused_sequence_op(
        &self,
        hidden: usize,
        has_bias: bool,
        chunk: isize,
        seq_len: usize,
        emit_y: bool,
    ) -> Option<Box<dyn TypedOp>> {
        if self.0.linear_before_reset && hidden <= MAX_HIDDEN && chunk.abs() == 1 && seq_len > 0 {
            Some(Box::new(SmallGruSeq { hidden, has_bias, backward: chunk < 0, emit_y }))
        } else {
            self.0.fused_sequence_op(hidden, has_bias, chunk, seq_len, emit_y)
        }
    }
}

/// One direction of an ONNX GRU (`linear_before_reset = 1`) over a whole sequence, with
/// tract's fused-op interface: inputs `X` `[batch, T, in]`, `W` `[3h, in]`, `R` `[3h, h]`,
/// optionally `B` (`[1, 6h]` or `[6h]`), `initial_h` `[batch, 1, h]`; outputs `Y`
/// `[batch, T, h]` (`[batch, 0, h]` without `emit_y`) and `Y_h` `[batch, 1, h]`. Gates in
/// ONNX order z, r, h. Stateless: every run starts from `initial_h`, the ONNX contract.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct SmallGruSeq {
    pub hidden: usize,
    pub has_bias: bool,
    pub backward: bool,
    pub emit_y: bool,
}

impl Op for SmallGruSeq {
    fn name(&self) -> StaticName {
        "SmallGruSeq".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "hidden={} bias={} backward={} emit_y={}",
            self.hidden, self.has_bias, self.backward, self.emit_y
        )])
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for SmallGruSeq {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let h = self.hidden;
        let x = inputs[0].to_plain_array_view::<f32>()?.into_dimensionality::<Ix3>()?;
        let (batch, t_len, in_size) = x.dim();
        let w = inputs[1].to_plain_array_view::<f32>()?;
        let r = inputs[2].to_plain_array_view::<f32>()?;
        ensure!(w.shape() == [3 * h, in_size], "GRU W is {:?}, expected [{}, {in_size}]", w.shape(), 3 * h);
        ensure!(r.shape() == [3 * h, h], "GRU R is {:?}, expected [{}, {h}]", r.shape(), 3 * h);
        let w = w.into_dimensionality::<tract_onnx::tract_core::ndarray::Ix2>()?;
        let bias: Option<Vec<f32>> = if self.has_bias {
            let b = inputs[3].to_plain_array_view::<f32>()?;
            ensure!(b.len() == 6 * h, "GRU B has {} values, expected {}", b.len(), 6 * h);
            Some(b.iter().copied().collect())
        } else {
            None
        };
        let h0 = inputs[inputs.len() - 1].to_plain_array_view::<f32>()?;
        ensure!(h0.len() == batch * h, "GRU initial_h has {} values, expected {}", h0.len(), batch * h);
        let h0: Vec<f32> = h0.iter().copied().collect();

        // The input side for every step at once: xw[b*T + t] = X[b, t]·Wᵀ + Wb.
        let x_rows = x.to_shape((batch * t_len, in_size))?;
        let mut xw = Array2::<f32>::zeros((batch * t_len, 3 * h));
        general_mat_mul(1.0, &x_rows, &w.t(), 0.0, &mut xw);
        if let Some(b) = &bias {
            xw += &tract_onnx::tract_core::ndarray::ArrayView1::from(&b[..3 * h]).insert_axis(Axis(0));
        }
        let xw = xw.as_slice_mut().context("input product not contiguous")?;
        // R in blocks of LANES gate rows, each block stored k-major: block c holds
        // R[c·LANES + l][k] at [k·LANES + l]. A step then keeps LANES sums in registers while
        // it walks k (3h is padded to a multiple of LANES with zero rows).
        let blocks = (3 * h).div_ceil(LANES);
        let mut rt = vec![0f32; blocks * h * LANES];
        for (g, row) in r.outer_iter().enumerate() {
            let (c, l) = (g / LANES, g % LANES);
            for (k, v) in row.iter().enumerate() {
                rt[(c * h + k) * LANES + l] = *v;
            }
        }
        let mut rb = vec![0f32; blocks * LANES];
        if let Some(b) = &bias {
            rb[..3 * h].copy_from_slice(&b[3 * h..]);
        }

        let sigmoid = Func::Sigmoid.ew_f32()?;
        let tanh = Func::Tanh.ew_f32()?;
        let y_len = if self.emit_y { t_len } else { 0 };
        let mut y = vec![0f32; batch * y_len * h];
        let mut last = vec![0f32; batch * h];
        let mut rh = vec![0f32; blocks * LANES];
        for b in 0..batch {
            let mut ht = h0[b * h..(b + 1) * h].to_vec();
            for step in 0..t_len {
                let t = if self.backward { t_len - 1 - step } else { step };
                recurrent_product(&rt, &rb, &ht, &mut rh);
                let g = &mut xw[(b * t_len + t) * 3 * h..(b * t_len + t + 1) * 3 * h];
                // The cell, as tract's GruEpilogue: z, r = σ(x + r); n = tanh(xn + r·rn);
                // h' = n + z·(h − n).
                for (gj, rj) in g[..2 * h].iter_mut().zip(&rh[..2 * h]) {
                    *gj += rj;
                }
                sigmoid.run(&mut g[..2 * h])?;
                let (zr, n) = g.split_at_mut(2 * h);
                for ((nj, rj), rnj) in n.iter_mut().zip(&zr[h..]).zip(&rh[2 * h..]) {
                    *nj += rj * rnj;
                }
                tanh.run(n)?;
                for ((hj, nj), zj) in ht.iter_mut().zip(n.iter()).zip(&zr[..h]) {
                    *hj = nj + zj * (*hj - nj);
                }
                if self.emit_y {
                    y[(b * t_len + t) * h..(b * t_len + t + 1) * h].copy_from_slice(&ht);
                }
            }
            last[b * h..(b + 1) * h].copy_from_slice(&ht);
        }
        Ok(tvec!(
            Tensor::from_shape(&[batch, y_len, h], &y)?.into_tvalue(),
            Tensor::from_shape(&[batch, 1, h], &last)?.into_tvalue()
        ))
    }
}

impl TypedOp for SmallGruSeq {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(x.datum_type == f32::datum_type(), "SmallGruSeq computes in f32, got {:?}", x.datum_type);
        let batch = x.shape[0].clone();
        let y_len = if self.emit_y { x.shape[1].clone() } else { 0.to_dim() };
        Ok(tvec!(
            f32::fact([batch.clone(), y_len, self.hidden.to_dim()]),
            f32::fact([batch, 1.to_dim(), self.hidden.to_dim()])
        ))
    }

    tract_onnx::tract_core::as_op!();
}
