//! The MIMML network (candle).
//!
//! ```text
//!  audio [B,Ta,11] ─► Linear ─► Conv1d(k) ─► ReLU ─► BiGRU ─► masked mean ─► u_a ─┐
//!  video [B,Tv,14] ─► Linear ─► Conv1d(k) ─► ReLU ─► BiGRU ─► masked mean ─► u_v ─┼─► gates g_m = σ(W_m[u_a;u_v;u_t;present])
//!  text  [B,Tt,22] ─► Linear ─► Conv1d(k) ─► ReLU ─► BiGRU ─► masked mean ─► u_t ─┘        │
//!                                                                               [g_a⊙u_a, g_v⊙u_v, g_t⊙u_t]
//!                                                                                   ─► BiGRU ─► Conv1d ─► ReLU ─► mean over present ─► f
//!  heads: depressed (logit) and PHQ-8 (z-score) on f; one unimodal depressed head per u_m (MTL)
//!  MI:    BA bound  text → audio, text → video (Gaussian predictor of u_m from u_t)
//!         InfoNCE   f → u_m for every modality
//! ```
//!
//! Missing modalities are masked: `u_m = 0`, gate 0, excluded from the fusion mean and from
//! the MI terms. The fusion block runs over the three gated modality vectors as a length-3
//! sequence (the paper fuses with "a gated structure with BiGRUs and CNNs"; with sessions whose
//! modalities have different segmentations, fusing modality vectors is the choice that needs
//! no time alignment).

use candle_core::{DType, Result, Tensor};
use candle_nn::rnn::{GRU, GRUConfig, RNN, gru};
use candle_nn::{Conv1d, Conv1dConfig, Linear, Module, VarBuilder, conv1d, linear};

use super::config::{Fusion, MimmlConfig};
use super::data::{Batch, MODALITIES};

/// A bidirectional GRU over padded sequences: the backward direction reverses each sequence
/// within its own length, so padding never flows into real steps.
#[derive(Debug, Clone)]
pub struct BiGru {
    fwd: GRU,
    bwd: GRU,
}

impl BiGru {
    pub fn new(input: usize, hidden_each: usize, vb: VarBuilder) -> Result<Self> {
        Ok(BiGru {
            fwd: gru(input, hidden_each, GRUConfig::default(), vb.pp("fwd"))?,
            bwd: gru(input, hidden_each, GRUConfig::default(), vb.pp("bwd"))?,
        })
    }

    /// `x` `[B, T, D]`, `lens` valid lengths → `[B, T, 2·hidden_each]`.
    pub fn forward(&self, x: &Tensor, lens: &[usize]) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let run = |g: &GRU, x: &Tensor| -> Result<Tensor> {
            let states = g.seq(x)?;
            Tensor::stack(&states.iter().map(|s| s.h().clone()).collect::<Vec<_>>(), 1)
        };
        let fwd = run(&self.fwd, x)?;
        let idx: Vec<u32> = (0..b)
            .flat_map(|i| {
                let l = lens[i].max(1).min(t);
                (0..t).map(move |j| if j < l { (l - 1 - j) as u32 } else { j as u32 })
            })
            .collect();
        let idx = Tensor::from_vec(idx, (b, t, 1), x.device())?;
        let rev = |y: &Tensor| y.gather(&idx.broadcast_as(y.shape())?.contiguous()?, 1);
        let bwd = rev(&run(&self.bwd, &rev(x)?)?)?;
        Tensor::cat(&[fwd, bwd], 2)
    }
}

/// Mean over the steps where `mask` (`[B, T]`) is 1; zero for empty rows.
pub fn masked_mean(h: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.unsqueeze(2)?;
    let sum = h.broadcast_mul(&m)?.sum(1)?;
    let n = mask.sum_keepdim(1)?.maximum(1.0)?;
    sum.broadcast_div(&n)
}

/// One modality's encoder.
#[derive(Debug, Clone)]
pub struct Encoder {
    proj: Linear,
    conv: Conv1d,
    gru: BiGru,
}

impl Encoder {
    fn new(input: usize, cfg: &MimmlConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden;
        let conv_cfg = Conv1dConfig { padding: cfg.kernel / 2, ..Default::default() };
        Ok(Encoder {
            proj: linear(input, h, vb.pp("proj"))?,
            conv: conv1d(h, h, cfg.kernel, conv_cfg, vb.pp("conv"))?,
            gru: BiGru::new(h, h / 2, vb.pp("gru"))?,
        })
    }

    /// `[B, T, D]` → `[B, H]`.
    fn forward(&self, x: &Tensor, mask: &Tensor, lens: &[usize]) -> Result<Tensor> {
        // Padding must stay zero (the projection's bias would otherwise leak into the
        // convolution at the edges of real steps).
        let h = self.proj.forward(x)?.relu()?.broadcast_mul(&mask.unsqueeze(2)?)?;
        let h = self.conv.forward(&h.transpose(1, 2)?.contiguous()?)?.relu()?.transpose(1, 2)?.contiguous()?;
        let h = h.broadcast_mul(&mask.unsqueeze(2)?)?;
        let h = self.gru.forward(&h, lens)?;
        masked_mean(&h, mask)
    }
}

/// Everything one forward pass produces.
#[derive(Debug)]
pub struct Output {
    /// `[B]` depressed logit.
    pub logit: Tensor,
    /// `[B]` PHQ-8 z-score.
    pub phq_z: Tensor,
    /// `[B, 3]` unimodal depressed logits.
    pub uni_logits: Tensor,
    /// Unimodal representations `[B, H]` (zeros where absent).
    pub u: Vec<Tensor>,
    /// Fused representation `[B, H]`.
    pub fused: Tensor,
    /// `[B, 3]` mean gate per modality, normalised over present modalities (concat: uniform).
    pub gates: Tensor,
}

#[derive(Debug, Clone)]
enum FusionNet {
    Gated { gates: Vec<Linear>, gru: Box<BiGru>, conv: Conv1d },
    Concat { proj: Linear },
}

#[derive(Debug, Clone)]
pub struct Mimml {
    pub cfg: MimmlConfig,
    encoders: Vec<Encoder>,
    fusion: FusionNet,
    head: Linear,
    phq: Linear,
    uni: Vec<Linear>,
    /// Barber–Agakov predictors from text to audio and to video: (mean, log-variance).
    ba: Vec<(Linear, Linear)>,
    /// InfoNCE projections of the fused vector, one per modality.
    nce: Vec<Linear>,
}

impl Mimml {
    pub fn new(cfg: &MimmlConfig, dims: [usize; MODALITIES], vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden;
        let names = ["audio", "video", "text"];
        let encoders = (0..MODALITIES)
            .map(|m| Encoder::new(dims[m], cfg, vb.pp(format!("enc_{}", names[m]))))
            .collect::<Result<_>>()?;
        let fusion = match cfg.fusion {
            Fusion::Gated => FusionNet::Gated {
                gates: (0..MODALITIES)
                    .map(|m| linear(MODALITIES * h + MODALITIES, h, vb.pp(format!("gate_{}", names[m]))))
                    .collect::<Result<_>>()?,
                gru: Box::new(BiGru::new(h, h / 2, vb.pp("fusion_gru"))?),
                conv: conv1d(h, h, 3, Conv1dConfig { padding: 1, ..Default::default() }, vb.pp("fusion_conv"))?,
            },
            Fusion::Concat => FusionNet::Concat { proj: linear(MODALITIES * h, h, vb.pp("concat"))? },
        };
        Ok(Mimml {
            cfg: cfg.clone(),
            encoders,
            fusion,
            head: linear(h, 1, vb.pp("head"))?,
            phq: linear(h, 1, vb.pp("phq"))?,
            uni: (0..MODALITIES).map(|m| linear(h, 1, vb.pp(format!("uni_{}", names[m])))).collect::<Result<_>>()?,
            ba: (0..2)
                .map(|m| {
                    Ok((
                        linear(h, h, vb.pp(format!("ba_mu_{}", names[m])))?,
                        linear(h, h, vb.pp(format!("ba_lv_{}", names[m])))?,
                    ))
                })
                .collect::<Result<_>>()?,
            nce: (0..MODALITIES).map(|m| linear(h, h, vb.pp(format!("nce_{}", names[m])))).collect::<Result<_>>()?,
        })
    }

    /// `dropout` is a `[B, H]` mask already scaled by 1/(1−p), or `None` at inference.
    pub fn forward(&self, b: &Batch, dropout: Option<&Tensor>) -> Result<Output> {
        let bsz = b.present.dim(0)?;
        let present: Vec<Tensor> = (0..MODALITIES).map(|m| b.present.narrow(1, m, 1)).collect::<Result<_>>()?; // [B,1]
        let u: Vec<Tensor> = (0..MODALITIES)
            .map(|m| self.encoders[m].forward(&b.x[m], &b.mask[m], &b.lens[m])?.broadcast_mul(&present[m]))
            .collect::<Result<_>>()?;
        let (fused, gates) = match &self.fusion {
            FusionNet::Gated { gates, gru, conv } => {
                let ctx = Tensor::cat(&[u[0].clone(), u[1].clone(), u[2].clone(), b.present.clone()], 1)?;
                let g: Vec<Tensor> = (0..MODALITIES)
                    .map(|m| candle_nn::ops::sigmoid(&gates[m].forward(&ctx)?)?.broadcast_mul(&present[m]))
                    .collect::<Result<_>>()?;
                let seq = Tensor::stack(&(0..MODALITIES).map(|m| &g[m] * &u[m]).collect::<Result<Vec<_>>>()?, 1)?; // [B,3,H]
                let s = gru.forward(&seq, &vec![MODALITIES; bsz])?;
                let s = conv.forward(&s.transpose(1, 2)?.contiguous()?)?.relu()?.transpose(1, 2)?.contiguous()?;
                let fused = masked_mean(&s, &b.present)?;
                let gm = Tensor::cat(&g.iter().map(|t| t.mean_keepdim(1)).collect::<Result<Vec<_>>>()?, 1)?; // [B,3]
                let gm = gm.broadcast_div(&gm.sum_keepdim(1)?.maximum(1e-6)?)?;
                (fused, gm)
            }
            FusionNet::Concat { proj } => {
                let fused = proj.forward(&Tensor::cat(&u, 1)?)?.relu()?;
                let gm = b.present.broadcast_div(&b.present.sum_keepdim(1)?.maximum(1.0)?)?;
                (fused, gm)
            }
        };
        let f = match dropout {
            Some(mask) => (&fused * mask)?,
            None => fused.clone(),
        };
        let logit = self.head.forward(&f)?.squeeze(1)?;
        let phq_z = self.phq.forward(&f)?.squeeze(1)?;
        let uni_logits =
            Tensor::cat(&(0..MODALITIES).map(|m| self.uni[m].forward(&u[m])).collect::<Result<Vec<_>>>()?, 1)?;
        Ok(Output { logit, phq_z, uni_logits, u, fused, gates })
    }

    /// Loss terms of one batch: (total, task, nce, lld).
    pub fn loss(&self, b: &Batch, out: &Output, pos_weight: f32) -> Result<(Tensor, f32, f32, f32)> {
        use super::losses::{ba_lld, bce_with_logits, info_nce};
        let dev = b.label.device();
        let ones = Tensor::ones(b.label.dim(0)?, DType::F32, dev)?;
        let task = (bce_with_logits(&out.logit, &b.label, &ones, pos_weight)?
            + (out.phq_z.sub(&b.phq_z)?.sqr()?.mean_all()? * f64::from(self.cfg.phq_weight))?)?;
        let mut total = task.clone();
        if self.cfg.mtl_weight > 0.0 {
            for m in 0..MODALITIES {
                let w = b.present.narrow(1, m, 1)?.squeeze(1)?;
                let l = bce_with_logits(&out.uni_logits.narrow(1, m, 1)?.squeeze(1)?, &b.label, &w, pos_weight)?;
                total = (total + (l * f64::from(self.cfg.mtl_weight))?)?;
            }
        }
        let (mut nce_v, mut lld_v) = (0.0, 0.0);
        if self.cfg.nce_weight > 0.0 {
            for m in 0..MODALITIES {
                let w = b.present.narrow(1, m, 1)?.squeeze(1)?;
                let pred = self.nce[m].forward(&out.fused)?;
                let l = info_nce(&pred, &out.u[m], &w, 5.0)?;
                nce_v += l.to_scalar::<f32>()?;
                total = (total + (l * f64::from(self.cfg.nce_weight))?)?;
            }
        }
        if self.cfg.ba_weight > 0.0 {
            let text = b.present.narrow(1, 2, 1)?.squeeze(1)?;
            for m in 0..2 {
                let both = (b.present.narrow(1, m, 1)?.squeeze(1)? * &text)?;
                let (mu_net, lv_net) = &self.ba[m];
                let mu = mu_net.forward(&out.u[2])?;
                // Bounded log-variance keeps the bound finite early in training.
                let lv = (lv_net.forward(&out.u[2])?.tanh()? * 4.0)?;
                let l = ba_lld(&mu, &lv, &out.u[m], &both)?;
                lld_v += l.to_scalar::<f32>()?;
                total = (total - (l * f64::from(self.cfg.ba_weight))?)?;
            }
        }
        let task_v = task.to_scalar::<f32>()?;
        Ok((total, task_v, nce_v, lld_v))
    }
}

/// Probabilities from logits.
pub fn sigmoid_vec(t: &Tensor) -> Result<Vec<f32>> {
    candle_nn::ops::sigmoid(t)?.to_vec1()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mimml::data::{Example, InputSpec, Norm, batch};
    use candle_core::Device;
    use candle_nn::VarMap;

    fn spec() -> InputSpec {
        let dims = [2, 3, 2];
        InputSpec {
            dims,
            norms: dims.map(|d| Norm { mean: vec![0.0; d], sd: vec![1.0; d] }),
            phq_mean: 0.0,
            phq_sd: 1.0,
        }
    }

    fn examples() -> Vec<Example> {
        let row = |k: usize, n: usize| -> Vec<Vec<f32>> {
            (0..n).map(|i| (0..k).map(|j| ((i * 7 + j * 3) % 5) as f32 / 5.0 - 0.4).collect()).collect()
        };
        vec![
            Example { id: 1, seqs: [Some(row(2, 3)), Some(row(3, 2)), Some(row(2, 4))], depressed: true, phq8: 12.0 },
            Example { id: 2, seqs: [Some(row(2, 1)), None, Some(row(2, 2))], depressed: false, phq8: 3.0 },
        ]
    }

    /// A small gated model, its parameters, the two examples and their batch.
    fn setup() -> (Mimml, VarMap, Vec<Example>, Batch) {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let cfg = MimmlConfig { hidden: 4, ..MimmlConfig::default() };
        let model = Mimml::new(&cfg, [2, 3, 2], VarBuilder::from_varmap(&varmap, DType::F32, &dev)).expect("model");
        let ex = examples();
        let refs: Vec<&Example> = ex.iter().collect();
        let b = batch(&refs, &[[true; 3]; 2], &spec(), &dev).expect("batch");
        (model, varmap, ex, b)
    }

    /// The gates' gradients (through the fusion block, into the fused vector) against finite
    /// differences of the parameters themselves.
    #[test]
    fn gate_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let (model, varmap, _ex, b) = setup();
        let objective = || -> Tensor {
            let o = model.forward(&b, None).expect("forward");
            // A non-trivial scalar of the fused vector and the gate weights.
            (o.fused.sqr().expect("sq").sum_all().expect("sum")
                + o.gates.narrow(1, 0, 1).expect("g").sum_all().expect("sum"))
            .expect("add")
        };
        for name in ["gate_audio.weight", "gate_text.bias"] {
            let var = varmap.data().lock().expect("lock").get(name).expect("parameter").clone();
            let grads = objective().backward().expect("backward");
            let g: Vec<f32> =
                grads.get(var.as_tensor()).expect("grad").flatten_all().expect("flat").to_vec1().expect("vec");
            let base: Vec<f32> = var.as_tensor().flatten_all().expect("flat").to_vec1().expect("vec");
            let shape = var.as_tensor().shape().clone();
            for i in (0..base.len()).step_by(3).take(6) {
                let eval = |d: f32| {
                    let mut v = base.clone();
                    v[i] += d;
                    var.set(&Tensor::from_vec(v, shape.clone(), &dev).expect("t")).expect("set");
                    objective().to_scalar::<f32>().expect("scalar")
                };
                let eps = 1e-2;
                let num = (eval(eps) - eval(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(base.clone(), shape.clone(), &dev).expect("t")).expect("reset");
                let tol = 2e-3f32.max(3e-2 * num.abs());
                assert!((num - g[i]).abs() <= tol, "{name}[{i}]: autograd {} vs finite difference {num}", g[i]);
            }
        }
    }

    #[test]
    fn absent_modalities_are_masked_everywhere() {
        let dev = Device::Cpu;
        let (model, _varmap, ex, b) = setup();
        let refs: Vec<&Example> = ex.iter().collect();
        let o = model.forward(&b, None).expect("forward");
        let u_video: Vec<Vec<f32>> = o.u[1].to_vec2().expect("u");
        assert!(u_video[1].iter().all(|&v| v == 0.0), "example 2 has no video");
        let gates: Vec<Vec<f32>> = o.gates.to_vec2().expect("gates");
        assert_eq!(gates[1][1], 0.0);
        assert!((gates[1].iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // Padding does not change the result: example 2 alone gives the same output.
        let alone = batch(&refs[1..], &[[true; 3]], &spec(), &dev).expect("batch");
        let o2 = model.forward(&alone, None).expect("forward");
        let (a, b2): (Vec<f32>, Vec<f32>) = (o.logit.to_vec1().expect("l"), o2.logit.to_vec1().expect("l"));
        assert!((a[1] - b2[0]).abs() < 1e-5, "{} vs {}", a[1], b2[0]);
    }
}
