//! From the feature cache to padded, normalised batches.

use candle_core::{Device, Tensor};
use features::{Sequence, SessionFeatures};
use serde::{Deserialize, Serialize};

use corpus::CorpusError;
use corpus::Split;
use corpus::cache::FeatureCache;

pub const MODALITIES: usize = 3;

/// Per-feature mean and standard deviation of one modality over the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Norm {
    pub mean: Vec<f32>,
    pub sd: Vec<f32>,
}

impl Norm {
    fn fit(rows: &[&[f32]], dim: usize) -> Norm {
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0f64; dim];
        for r in rows {
            for (m, v) in mean.iter_mut().zip(*r) {
                *m += f64::from(*v) / n;
            }
        }
        let mut var = vec![0f64; dim];
        for r in rows {
            for ((s, v), m) in var.iter_mut().zip(*r).zip(&mean) {
                *s += (f64::from(*v) - m).powi(2) / n;
            }
        }
        Norm {
            mean: mean.iter().map(|&m| m as f32).collect(),
            sd: var.iter().map(|&v| (v.sqrt() as f32).max(1e-3)).collect(),
        }
    }

    fn apply(&self, row: &[f32]) -> Vec<f32> {
        row.iter().zip(&self.mean).zip(&self.sd).map(|((x, m), s)| ((x - m) / s).clamp(-5.0, 5.0)).collect()
    }
}

/// One session, normalised and cut to `max_segments`.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: u32,
    /// Per modality: rows of normalised features, or `None` when absent.
    pub seqs: [Option<Vec<Vec<f32>>>; MODALITIES],
    pub depressed: bool,
    pub phq8: f32,
}

/// Feature widths per modality and the normalisation fitted on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub dims: [usize; MODALITIES],
    pub norms: [Norm; MODALITIES],
    /// Mean and sd of PHQ-8 over the training split (the regression head predicts z-scores).
    pub phq_mean: f32,
    pub phq_sd: f32,
}

fn seqs(f: &SessionFeatures) -> [&Option<Sequence>; MODALITIES] {
    [&f.audio, &f.video, &f.text]
}

impl InputSpec {
    /// Fits the normalisation on `train`, whose text features carry the `text` embedding.
    pub fn fit(train: &[(SessionFeatures, bool, f32)], text: features::text::TextEmbedding) -> InputSpec {
        let widths = features::schema::FeatureSchema::with_text(text).widths();
        let norms = std::array::from_fn(|m| {
            let rows: Vec<&[f32]> = train
                .iter()
                .filter_map(|(f, _, _)| seqs(f)[m].as_ref())
                .flat_map(|s| (0..s.len()).map(|i| s.row(i)))
                .collect();
            Norm::fit(&rows, widths[m])
        });
        let phq: Vec<f32> = train.iter().map(|t| t.2).collect();
        let phq_mean = phq.iter().sum::<f32>() / phq.len().max(1) as f32;
        let phq_sd =
            (phq.iter().map(|p| (p - phq_mean).powi(2)).sum::<f32>() / phq.len().max(1) as f32).sqrt().max(1.0);
        InputSpec { dims: widths, norms, phq_mean, phq_sd }
    }

    /// Normalises one session's features into an example.
    pub fn example(&self, id: u32, f: &SessionFeatures, depressed: bool, phq8: f32, max_segments: usize) -> Example {
        let s = seqs(f);
        let seqs = std::array::from_fn(|m| {
            s[m].as_ref()
                .filter(|q| !q.is_empty() && q.dim == self.dims[m])
                .map(|q| q.select_evenly(max_segments).into_iter().map(|r| self.norms[m].apply(r)).collect())
        });
        Example { id, seqs, depressed, phq8 }
    }
}

/// Labelled examples of one split read from the cache (sessions without labels are skipped).
pub fn split_features(
    cache: &FeatureCache,
    split: Split,
) -> Result<Vec<(u32, SessionFeatures, bool, f32)>, CorpusError> {
    let mut out = Vec::new();
    for s in cache.sessions(split) {
        let Some(l) = &s.labels else { continue };
        out.push((s.id, cache.load(s.id)?, l.depressed, f32::from(l.phq8)));
    }
    Ok(out)
}

/// A padded batch.
#[derive(Debug)]
pub struct Batch {
    /// Per modality `[B, T, D]`.
    pub x: Vec<Tensor>,
    /// Per modality `[B, T]`, 1 for real segments.
    pub mask: Vec<Tensor>,
    /// Per modality, the valid length of every example (0 = absent).
    pub lens: Vec<Vec<usize>>,
    /// `[B, 3]`: 1 where the modality is present.
    pub present: Tensor,
    /// `[B]`
    pub label: Tensor,
    /// `[B]`, z-scored PHQ-8.
    pub phq_z: Tensor,
}

/// Steps every padded sequence has at least: candle's conv1d backward needs an input no
/// shorter than the kernel (shorter ones are zero-padded and masked like any padding).
pub const MIN_STEPS: usize = 5;

/// Builds a batch. `keep[b][m]` says whether example `b` may use modality `m` (for modality
/// dropout and single-modality variants).
pub fn batch(
    examples: &[&Example],
    keep: &[[bool; MODALITIES]],
    spec: &InputSpec,
    dev: &Device,
) -> candle_core::Result<Batch> {
    let b = examples.len();
    let mut x = Vec::new();
    let mut mask = Vec::new();
    let mut lens = Vec::new();
    let mut present = vec![0f32; b * MODALITIES];
    for m in 0..MODALITIES {
        let d = spec.dims[m];
        let l: Vec<usize> = examples
            .iter()
            .zip(keep)
            .map(|(e, k)| if k[m] { e.seqs[m].as_ref().map_or(0, Vec::len) } else { 0 })
            .collect();
        let t = l.iter().copied().max().unwrap_or(0).max(MIN_STEPS);
        let mut data = vec![0f32; b * t * d];
        let mut mk = vec![0f32; b * t];
        for (i, e) in examples.iter().enumerate() {
            if l[i] == 0 {
                continue;
            }
            present[i * MODALITIES + m] = 1.0;
            for (j, row) in e.seqs[m].iter().flatten().enumerate().take(l[i]) {
                data[(i * t + j) * d..(i * t + j + 1) * d].copy_from_slice(row);
                mk[i * t + j] = 1.0;
            }
        }
        x.push(Tensor::from_vec(data, (b, t, d), dev)?);
        mask.push(Tensor::from_vec(mk, (b, t), dev)?);
        lens.push(l);
    }
    let label: Vec<f32> = examples.iter().map(|e| f32::from(u8::from(e.depressed))).collect();
    let phq: Vec<f32> = examples.iter().map(|e| (e.phq8 - spec.phq_mean) / spec.phq_sd).collect();
    Ok(Batch {
        x,
        mask,
        lens,
        present: Tensor::from_vec(present, (b, MODALITIES), dev)?,
        label: Tensor::from_vec(label, b, dev)?,
        phq_z: Tensor::from_vec(phq, b, dev)?,
    })
}
