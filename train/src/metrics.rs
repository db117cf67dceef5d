//! Screening metrics: what the numbers mean on DAIC-WOZ-sized test sets (accuracy alone is
//! misleading with 30 % positives; see `shared/reference/mimml.md`).

use serde::{Deserialize, Serialize};

/// One participant's prediction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub p: f32,
    pub depressed: bool,
    pub phq8_pred: f32,
    pub phq8: f32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
}

/// A point estimate with its participant-level bootstrap 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ci {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub threshold: f32,
    pub accuracy: Ci,
    /// F1 of the depressed class.
    pub f1: Ci,
    pub macro_f1: Ci,
    pub precision: f64,
    /// = sensitivity.
    pub recall: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub roc_auc: Ci,
    pub phq8_rmse: f64,
    pub phq8_mae: f64,
    /// Expected calibration error, 10 equal-width bins.
    pub ece: f64,
    pub confusion: Confusion,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

pub fn confusion(s: &[Scored], threshold: f32) -> Confusion {
    let mut c = Confusion::default();
    for x in s {
        match (x.p >= threshold, x.depressed) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

fn f1(tp: usize, fp: usize, fn_: usize) -> f64 {
    ratio(2 * tp, 2 * tp + fp + fn_)
}

fn point(s: &[Scored], threshold: f32) -> [f64; 4] {
    let c = confusion(s, threshold);
    let f1_pos = f1(c.tp, c.fp, c.fn_);
    let f1_neg = f1(c.tn, c.fn_, c.fp);
    [ratio(c.tp + c.tn, s.len()), f1_pos, (f1_pos + f1_neg) / 2.0, roc_auc(s)]
}

/// The threshold that maximises depressed-class F1 on `s` (meant for the dev split); ties go
/// to the threshold nearest 0.5. Candidates are midpoints between consecutive scores.
pub fn tune_threshold(s: &[Scored]) -> f32 {
    let mut ps: Vec<f32> = s.iter().map(|x| x.p).collect();
    ps.sort_by(f32::total_cmp);
    ps.dedup();
    let mut best = (f64::MIN, f32::MAX, 0.5f32);
    for w in ps.windows(2) {
        let t = 0.5 * (w[0] + w[1]);
        let c = confusion(s, t);
        let f = f1(c.tp, c.fp, c.fn_);
        let dist = (t - 0.5).abs();
        if f > best.0 || (f == best.0 && dist < best.1) {
            best = (f, dist, t);
        }
    }
    best.2
}

/// Area under the ROC curve by the rank statistic (ties count half); 0.5 if a class is missing.
pub fn roc_auc(s: &[Scored]) -> f64 {
    let pos: Vec<f32> = s.iter().filter(|x| x.depressed).map(|x| x.p).collect();
    let neg: Vec<f32> = s.iter().filter(|x| !x.depressed).map(|x| x.p).collect();
    if pos.is_empty() || neg.is_empty() {
        return 0.5;
    }
    let mut wins = 0.0f64;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()) as f64
}

/// ROC curve points (false-positive rate, true-positive rate), from (0,0) to (1,1).
pub fn roc_curve(s: &[Scored]) -> Vec<(f64, f64)> {
    let mut v: Vec<&Scored> = s.iter().collect();
    v.sort_by(|a, b| b.p.total_cmp(&a.p));
    let (np, nn) = (s.iter().filter(|x| x.depressed).count(), s.iter().filter(|x| !x.depressed).count());
    let (mut tp, mut fp) = (0, 0);
    let mut out = vec![(0.0, 0.0)];
    for x in v {
        if x.depressed {
            tp += 1;
        } else {
            fp += 1;
        }
        out.push((ratio(fp, nn), ratio(tp, np)));
    }
    out
}

/// (mean predicted, observed rate, count) per non-empty bin of 10.
pub fn reliability(s: &[Scored]) -> Vec<(f64, f64, usize)> {
    let mut bins = vec![(0.0f64, 0usize, 0usize); 10];
    for x in s {
        let i = ((x.p * 10.0) as usize).min(9);
        bins[i].0 += f64::from(x.p);
        bins[i].1 += usize::from(x.depressed);
        bins[i].2 += 1;
    }
    bins.into_iter().filter(|b| b.2 > 0).map(|(sp, pos, n)| (sp / n as f64, pos as f64 / n as f64, n)).collect()
}

/// Small deterministic generator for the bootstrap (no dependency on a random crate here).
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// All metrics at `threshold`, with 95 % intervals from `resamples` participant-level
/// bootstrap resamples (seeded).
pub fn evaluate(s: &[Scored], threshold: f32, resamples: usize, seed: u64) -> Metrics {
    let c = confusion(s, threshold);
    let pt = point(s, threshold);
    let mut rng = SplitMix(seed);
    let mut boots: [Vec<f64>; 4] = Default::default();
    for _ in 0..resamples {
        let sample: Vec<Scored> = (0..s.len()).map(|_| s[(rng.next() % s.len().max(1) as u64) as usize]).collect();
        for (k, v) in point(&sample, threshold).into_iter().enumerate() {
            boots[k].push(v);
        }
    }
    let ci = |k: usize| {
        let mut v = boots[k].clone();
        v.sort_by(f64::total_cmp);
        let q = |f: f64| if v.is_empty() { pt[k] } else { v[((v.len() - 1) as f64 * f) as usize] };
        Ci { value: pt[k], lo: q(0.025), hi: q(0.975) }
    };
    let n = s.len().max(1) as f64;
    let rmse = (s.iter().map(|x| f64::from(x.phq8_pred - x.phq8).powi(2)).sum::<f64>() / n).sqrt();
    let mae = s.iter().map(|x| f64::from((x.phq8_pred - x.phq8).abs())).sum::<f64>() / n;
    let ece = reliability(s).iter().map(|(conf, acc, k)| (*k as f64 / n) * (conf - acc).abs()).sum();
    let recall = ratio(c.tp, c.tp + c.fn_);
    Metrics {
        n: s.len(),
        threshold,
        accuracy: ci(0),
        f1: ci(1),
        macro_f1: ci(2),
        precision: ratio(c.tp, c.tp + c.fp),
        recall,
        sensitivity: recall,
        specificity: ratio(c.tn, c.tn + c.fp),
        roc_auc: ci(3),
        phq8_rmse: rmse,
        phq8_mae: mae,
        ece,
        confusion: c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: f32, d: bool) -> Scored {
        Scored { p, depressed: d, phq8_pred: if d { 14.0 } else { 4.0 }, phq8: if d { 12.0 } else { 4.0 } }
    }

    #[test]
    fn hand_computed_metrics() {
        let v = [s(0.9, true), s(0.6, false), s(0.4, true), s(0.1, false), s(0.2, false)];
        let m = evaluate(&v, 0.5, 200, 1);
        assert_eq!(m.confusion, Confusion { tp: 1, fp: 1, tn: 2, fn_: 1 });
        assert!((m.accuracy.value - 0.6).abs() < 1e-9);
        assert!((m.f1.value - 0.5).abs() < 1e-9);
        // Negative class F1: 2·2 / (2·2 + 1 + 1) = 2/3; macro = (0.5 + 2/3) / 2.
        assert!((m.macro_f1.value - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-9);
        // AUC: pairs (0.9 vs 0.6, 0.1, 0.2) win 3; (0.4 vs 0.6) loses, vs 0.1, 0.2 wins → 5/6.
        assert!((m.roc_auc.value - 5.0 / 6.0).abs() < 1e-9);
        assert!((m.specificity - 2.0 / 3.0).abs() < 1e-9 && (m.sensitivity - 0.5).abs() < 1e-9);
        assert!((m.phq8_mae - 0.8).abs() < 1e-6);
        assert!(m.f1.lo <= m.f1.value && m.f1.value <= m.f1.hi);
        let curve = roc_curve(&v);
        assert_eq!((curve[0], *curve.last().expect("points")), ((0.0, 0.0), (1.0, 1.0)));
    }

    #[test]
    fn tuned_threshold_separates_when_possible() {
        let v = [s(0.9, true), s(0.35, true), s(0.3, false), s(0.1, false)];
        let t = tune_threshold(&v);
        assert!(t > 0.3 && t < 0.35, "{t}");
        assert_eq!(evaluate(&v, t, 0, 1).f1.value, 1.0);
    }

    #[test]
    fn a_perfectly_calibrated_model_has_no_calibration_error() {
        let v: Vec<Scored> = (0..10).map(|i| s(0.05, i == 0)).chain((0..10).map(|i| s(0.95, i != 0))).collect();
        let m = evaluate(&v, 0.5, 0, 1);
        assert!(m.ece < 0.06, "{}", m.ece);
    }
}
