//! The custom losses: weighted binary cross-entropy, InfoNCE (fusion-level MI) and the
//! Barber–Agakov bound (input-level MI). Each is checked against finite differences in the
//! tests below.

use candle_core::{D, Result, Tensor};

/// `log(1 + e^x)`, stable for large |x|.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Mean over rows with `weight > 0` of the binary cross-entropy of `logit` against `y`, with
/// positives weighted by `pos_weight` (class imbalance). `weight` is `[B]` of 0/1.
pub fn bce_with_logits(logit: &Tensor, y: &Tensor, weight: &Tensor, pos_weight: f32) -> Result<Tensor> {
    let pos = (y * softplus(&logit.neg()?)?)?.affine(f64::from(pos_weight), 0.0)?;
    let neg = ((1.0 - y)? * softplus(logit)?)?;
    let per = ((pos + neg)? * weight)?;
    per.sum_all()? / weight.sum_all()?.maximum(1.0)?
}

/// Rows scaled to unit length (zero rows stay zero). The epsilon inside the square root keeps
/// the gradient finite at zero rows (absent modalities).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-8)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// InfoNCE (CPC) between predictions `pred = g(fused)` `[B, H]` and targets `u` `[B, H]`, over
/// the rows where `present` (`[B]`, 0/1) is set: each row's own target is the positive, the
/// other present rows are the negatives. Cosine scores times `inv_temp`. Returns the mean
/// negative bound (to minimise), 0 when fewer than two rows are present.
pub fn info_nce(pred: &Tensor, u: &Tensor, present: &Tensor, inv_temp: f64) -> Result<Tensor> {
    let b = pred.dim(0)?;
    let p = l2_normalize(pred)?;
    let q = l2_normalize(u)?;
    let scores = (p.matmul(&q.t()?)? * inv_temp)?; // [B, B]
    // Absent columns cannot be negatives: push them to -1e4.
    let col_mask = present.reshape((1, b))?.broadcast_as((b, b))?;
    let scores = (scores.broadcast_mul(&col_mask)? + ((col_mask - 1.0)? * 1e4)?)?;
    let max = scores.max_keepdim(1)?.detach();
    let lse = (scores.broadcast_sub(&max)?.exp()?.sum_keepdim(1)?.log()? + max)?.squeeze(1)?;
    let diag = (scores * Tensor::eye(b, candle_core::DType::F32, pred.device())?)?.sum(1)?;
    let per = ((lse - diag)? * present)?;
    let n = present.sum_all()?.to_scalar::<f32>()?;
    if n < 2.0 { per.sum_all()?.affine(0.0, 0.0) } else { per.sum_all()? / f64::from(n) }
}

/// Barber–Agakov lower bound of `I(x; y)` up to a constant: the mean log-likelihood of `y`
/// under a diagonal Gaussian `N(mu, exp(logvar))` predicted from `x`, over rows where `both`
/// (`[B]`, 0/1) is set, per dimension. To maximise (MMIM's `lld`).
pub fn ba_lld(mu: &Tensor, logvar: &Tensor, y: &Tensor, both: &Tensor) -> Result<Tensor> {
    let h = y.dim(1)? as f64;
    let sq = (y - mu)?.sqr()?;
    let ll = ((sq / logvar.exp()?)? + logvar)?.affine(-0.5 / h, 0.0)?.sum(1)?; // [B]
    (ll * both)?.sum_all()? / both.sum_all()?.maximum(1.0)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: (usize, usize), seed: u64) -> Vec<f32> {
        // A small deterministic generator; the values only need to be varied.
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..shape.0 * shape.1)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Compares candle's gradient of `f` at `x0` with central finite differences (f64 math on
    /// an f32 model, so the tolerance is relative 2e-2 or absolute 2e-3).
    fn check(shape: (usize, usize), seed: u64, f: impl Fn(&Tensor) -> Result<Tensor>) {
        let dev = Device::Cpu;
        let x0 = rand(shape, seed);
        let x = Var::from_vec(x0.clone(), shape, &dev).expect("var");
        let y = f(x.as_tensor()).expect("forward");
        let grads = y.backward().expect("backward");
        let g: Vec<f32> = grads.get(x.as_tensor()).expect("grad").flatten_all().expect("flat").to_vec1().expect("vec");
        let eps = 1e-2f32;
        for i in 0..x0.len() {
            let eval = |d: f32| {
                let mut v = x0.clone();
                v[i] += d;
                let t = Tensor::from_vec(v, shape, &dev).expect("tensor");
                f(&t).expect("forward").to_scalar::<f32>().expect("scalar")
            };
            let num = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let tol = 2e-3f32.max(2e-2 * num.abs());
            assert!((num - g[i]).abs() <= tol, "element {i}: autograd {} vs finite difference {num}", g[i]);
        }
    }

    #[test]
    fn bce_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let y = Tensor::new(&[1f32, 0., 1., 0., 1.], &dev).expect("y");
        let w = Tensor::new(&[1f32, 1., 0., 1., 1.], &dev).expect("w");
        check((1, 5), 1, |x| bce_with_logits(&x.affine(3.0, 0.0)?.squeeze(0)?, &y, &w, 2.5));
    }

    #[test]
    fn info_nce_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let u = Tensor::from_vec(rand((4, 3), 7), (4, 3), &dev).expect("u");
        let present = Tensor::new(&[1f32, 1., 0., 1.], &dev).expect("present");
        check((4, 3), 2, |p| info_nce(p, &u, &present, 5.0));
        // And with respect to the targets.
        let p = Tensor::from_vec(rand((4, 3), 8), (4, 3), &dev).expect("p");
        check((4, 3), 3, |u| info_nce(&p, u, &present, 5.0));
    }

    #[test]
    fn absent_rows_get_finite_gradients() {
        let dev = Device::Cpu;
        let present = Tensor::new(&[1f32, 1., 0.], &dev).expect("present");
        let u = Tensor::new(&[[0.5f32, -1.0], [1.0, 0.2], [0.0, 0.0]], &dev).expect("u");
        let p = Var::from_vec(vec![0.3f32, 0.1, -0.2, 0.4, 0.0, 0.0], (3, 2), &dev).expect("p");
        let g = info_nce(p.as_tensor(), &u, &present, 5.0).expect("nce").backward().expect("backward");
        let grad: Vec<f32> = g.get(p.as_tensor()).expect("grad").flatten_all().expect("flat").to_vec1().expect("vec");
        assert!(grad.iter().all(|v| v.is_finite()), "{grad:?}");
    }

    #[test]
    fn info_nce_prefers_matching_pairs() {
        let dev = Device::Cpu;
        let u = Tensor::from_vec(rand((6, 4), 11), (6, 4), &dev).expect("u");
        let all = Tensor::ones(6, candle_core::DType::F32, &dev).expect("ones");
        let matched = info_nce(&u, &u, &all, 5.0).expect("nce").to_scalar::<f32>().expect("scalar");
        let shuffled = u.index_select(&Tensor::new(&[1u32, 2, 3, 4, 5, 0], &dev).expect("idx"), 0).expect("perm");
        let mismatched = info_nce(&shuffled, &u, &all, 5.0).expect("nce").to_scalar::<f32>().expect("scalar");
        assert!(matched < mismatched, "{matched} vs {mismatched}");
        // Fewer than two rows present: no contrast, zero loss.
        let one = Tensor::new(&[1f32, 0., 0., 0., 0., 0.], &dev).expect("one");
        assert_eq!(info_nce(&u, &u, &one, 5.0).expect("nce").to_scalar::<f32>().expect("scalar"), 0.0);
    }

    #[test]
    fn ba_bound_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let y = Tensor::from_vec(rand((3, 4), 5), (3, 4), &dev).expect("y");
        let lv = Tensor::from_vec(rand((3, 4), 6), (3, 4), &dev).expect("logvar").affine(0.5, 0.0).expect("scale");
        let both = Tensor::new(&[1f32, 0., 1.], &dev).expect("both");
        check((3, 4), 4, |mu| ba_lld(mu, &lv, &y, &both));
        let mu = Tensor::from_vec(rand((3, 4), 9), (3, 4), &dev).expect("mu");
        check((3, 4), 10, |lv| ba_lld(&mu, lv, &y, &both));
    }

    #[test]
    fn ba_bound_is_highest_for_the_right_mean() {
        let dev = Device::Cpu;
        let y = Tensor::from_vec(rand((3, 4), 5), (3, 4), &dev).expect("y");
        let zeros = y.zeros_like().expect("zeros");
        let both = Tensor::ones(3, candle_core::DType::F32, &dev).expect("ones");
        let right = ba_lld(&y, &zeros, &y, &both).expect("lld").to_scalar::<f32>().expect("scalar");
        let wrong = ba_lld(&zeros, &zeros, &y, &both).expect("lld").to_scalar::<f32>().expect("scalar");
        assert!(right > wrong && right.abs() < 1e-6);
    }
}
