//! Training, prediction and checkpoints.
//!
//! Deterministic for a seed: weights are initialised, batches shuffled, modalities and units
//! dropped from one seeded ChaCha generator (candle's own random numbers are not used).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::MimmlConfig;
use super::data::{Example, InputSpec, MODALITIES, batch, split_features};
use super::net::{Mimml, sigmoid_vec};
use crate::metrics::{self, Scored};
use corpus::Split;
use corpus::cache::FeatureCache;

/// Any error, boxed: the cause of a checkpoint file that could not be read or written.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Corpus(#[from] corpus::CorpusError),
    #[error("model computation")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Data(String),
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
    #[error("checkpoint {path}: {file}")]
    CheckpointFile {
        path: PathBuf,
        file: &'static str,
        #[source]
        source: BoxError,
    },
}

/// One epoch's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f32,
    pub task: f32,
    pub nce: f32,
    pub lld: f32,
    pub dev_f1: f64,
    pub dev_auc: f64,
}

/// A trained model with everything needed to use it.
pub struct Trained {
    pub model: Mimml,
    pub varmap: VarMap,
    pub spec: InputSpec,
    pub history: Vec<EpochLog>,
    pub best_epoch: usize,
    /// Decision threshold on P(depressed), tuned for depressed-class F1 on the dev split.
    pub threshold: f32,
}

impl std::fmt::Debug for Trained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trained")
            .field("cfg", &self.model.cfg)
            .field("best_epoch", &self.best_epoch)
            .finish_non_exhaustive()
    }
}

/// What `config.json` of a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub model: String,
    pub version: String,
    pub feature_schema: String,
    pub frontend_version: String,
    pub config: MimmlConfig,
    pub spec: InputSpec,
    pub best_epoch: usize,
    pub threshold: f32,
    pub history: Vec<EpochLog>,
}

/// Overwrites every parameter with seeded values: uniform ±1/√fan_in for weights, 0 for biases.
fn seeded_init(varmap: &VarMap, rng: &mut ChaCha8Rng) -> Result<(), TrainError> {
    let data = varmap.data().lock().map_err(|_| TrainError::Data("parameter map poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = if name.contains("bias") {
            vec![0.0; n]
        } else {
            let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound).collect()
        };
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

fn snapshot(varmap: &VarMap) -> Result<Vec<(String, Tensor)>, TrainError> {
    let data = varmap.data().lock().map_err(|_| TrainError::Data("parameter map poisoned".into()))?;
    data.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?))).collect()
}

fn restore(varmap: &VarMap, snap: &[(String, Tensor)]) -> Result<(), TrainError> {
    let data = varmap.data().lock().map_err(|_| TrainError::Data("parameter map poisoned".into()))?;
    for (k, t) in snap {
        if let Some(v) = data.get(k) {
            v.set(t)?;
        }
    }
    Ok(())
}

/// Examples of a split, normalised with `spec`.
pub fn examples(
    cache: &FeatureCache,
    split: Split,
    spec: &InputSpec,
    cfg: &MimmlConfig,
) -> Result<Vec<Example>, TrainError> {
    Ok(split_features(cache, split)?
        .into_iter()
        .map(|(id, f, d, p)| spec.example(id, &f, d, p, cfg.max_segments))
        .collect())
}

/// Scores a set of examples (no dropout). Also returns the gate weights per example.
pub fn predict(model: &Mimml, spec: &InputSpec, ex: &[Example]) -> Result<Vec<(Scored, [f32; 3])>, TrainError> {
    let mut out = Vec::new();
    for chunk in ex.chunks(64) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let keep = vec![model.cfg.use_modalities; refs.len()];
        let b = batch(&refs, &keep, spec, &Device::Cpu)?;
        let o = model.forward(&b, None)?;
        let p = sigmoid_vec(&o.logit)?;
        let phq: Vec<f32> = o.phq_z.to_vec1()?;
        let gates: Vec<Vec<f32>> = o.gates.to_vec2()?;
        for (i, e) in chunk.iter().enumerate() {
            let g = [gates[i][0], gates[i][1], gates[i][2]];
            let phq8_pred = (phq[i] * spec.phq_sd + spec.phq_mean).clamp(0.0, 24.0);
            out.push((Scored { p: p[i], depressed: e.depressed, phq8_pred, phq8: e.phq8 }, g));
        }
    }
    Ok(out)
}

/// Trains on the cache's train split with early stopping on the dev split.
pub fn train(
    cache: &FeatureCache,
    cfg: &MimmlConfig,
    mut on_epoch: impl FnMut(&EpochLog),
) -> Result<Trained, TrainError> {
    if cache.index.options.text() != cfg.text() {
        return Err(TrainError::Data(format!(
            "the config asks for the {}, the feature cache was built with the {}",
            cfg.text(),
            cache.index.options.text()
        )));
    }
    let train_raw = split_features(cache, Split::Train)?;
    if train_raw.iter().filter(|t| t.2).count() == 0 || train_raw.iter().filter(|t| !t.2).count() == 0 {
        return Err(TrainError::Data("the train split needs depressed and non-depressed participants".into()));
    }
    let spec = InputSpec::fit(
        &train_raw.iter().map(|(_, f, d, p)| (f.clone(), *d, *p)).collect::<Vec<_>>(),
        cfg.text_embedding,
    );
    let train_ex: Vec<Example> =
        train_raw.iter().map(|(id, f, d, p)| spec.example(*id, f, *d, *p, cfg.max_segments)).collect();
    let dev_ex = examples(cache, Split::Dev, &spec, cfg)?;
    if dev_ex.is_empty() {
        return Err(TrainError::Data("the dev split is empty: early stopping needs it".into()));
    }

    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let model = Mimml::new(cfg, spec.dims, vb)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    seeded_init(&varmap, &mut rng)?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW { lr: cfg.lr, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() },
    )?;
    let n_pos = train_ex.iter().filter(|e| e.depressed).count() as f32;
    let pos_weight = (train_ex.len() as f32 - n_pos) / n_pos;

    let mut history = Vec::new();
    let (mut best, mut best_epoch, mut best_snap) = ((f64::MIN, f64::MIN), 0, snapshot(&varmap)?);
    let mut order: Vec<usize> = (0..train_ex.len()).collect();
    for epoch in 1..=cfg.max_epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let (mut sum, mut task_s, mut nce_s, mut lld_s, mut nb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for chunk in order.chunks(cfg.batch_size) {
            let refs: Vec<&Example> = chunk.iter().map(|&i| &train_ex[i]).collect();
            let keep: Vec<[bool; MODALITIES]> = refs
                .iter()
                .map(|e| {
                    let avail: Vec<usize> =
                        (0..MODALITIES).filter(|&m| cfg.use_modalities[m] && e.seqs[m].is_some()).collect();
                    let mut k = [false; MODALITIES];
                    for &m in &avail {
                        k[m] = rng.random::<f32>() >= cfg.modality_dropout;
                    }
                    if !avail.is_empty() && avail.iter().all(|&m| !k[m]) {
                        k[avail[rng.random_range(0..avail.len())]] = true;
                    }
                    k
                })
                .collect();
            let b = batch(&refs, &keep, &spec, &dev)?;
            let keep_p = 1.0 - cfg.dropout;
            let mask: Vec<f32> = (0..refs.len() * cfg.hidden)
                .map(|_| if rng.random::<f32>() < keep_p { 1.0 / keep_p } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, (refs.len(), cfg.hidden), &dev)?;
            let out = model.forward(&b, Some(&mask))?;
            let (loss, task, nce, lld) = model.loss(&b, &out, pos_weight)?;
            opt.backward_step(&loss)?;
            sum += loss.to_scalar::<f32>()?;
            task_s += task;
            nce_s += nce;
            lld_s += lld;
            nb += 1.0;
        }
        let scored: Vec<Scored> = predict(&model, &spec, &dev_ex)?.into_iter().map(|(s, _)| s).collect();
        let c = metrics::confusion(&scored, 0.5);
        let dev_f1 = if c.tp == 0 { 0.0 } else { 2.0 * c.tp as f64 / (2 * c.tp + c.fp + c.fn_) as f64 };
        let dev_auc = metrics::roc_auc(&scored);
        let log =
            EpochLog { epoch, loss: sum / nb, task: task_s / nb, nce: nce_s / nb, lld: lld_s / nb, dev_f1, dev_auc };
        on_epoch(&log);
        history.push(log);
        if (dev_f1, dev_auc) > best {
            best = (dev_f1, dev_auc);
            best_epoch = epoch;
            best_snap = snapshot(&varmap)?;
        } else if epoch - best_epoch >= cfg.patience {
            break;
        }
    }
    restore(&varmap, &best_snap)?;
    let dev_scored: Vec<Scored> = predict(&model, &spec, &dev_ex)?.into_iter().map(|(s, _)| s).collect();
    let threshold = metrics::tune_threshold(&dev_scored);
    Ok(Trained { model, varmap, spec, history, best_epoch, threshold })
}

impl Trained {
    /// The feature schema the model was trained on.
    pub fn schema(&self) -> features::SchemaHash {
        self.model.cfg.text().schema_hash()
    }

    /// Writes `weights.safetensors` and `config.json` into `dir`.
    pub fn save(&self, dir: &Path, version: &str) -> Result<(), TrainError> {
        let err =
            |file: &'static str, source: BoxError| TrainError::CheckpointFile { path: dir.to_owned(), file, source };
        std::fs::create_dir_all(dir).map_err(|e| err("folder", e.into()))?;
        self.varmap.save(dir.join("weights.safetensors")).map_err(|e| err("weights.safetensors", e.into()))?;
        let meta = CheckpointMeta {
            model: "mimml".into(),
            version: version.to_owned(),
            feature_schema: self.schema().to_string(),
            frontend_version: features::schema::FRONTEND_VERSION.to_owned(),
            config: self.model.cfg.clone(),
            spec: self.spec.clone(),
            best_epoch: self.best_epoch,
            threshold: self.threshold,
            history: self.history.clone(),
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| err("config.json", e.into()))?;
        std::fs::write(dir.join("config.json"), json).map_err(|e| err("config.json", e.into()))
    }

    /// Loads a checkpoint; refuses one trained on another feature schema.
    pub fn load(dir: &Path) -> Result<(Trained, CheckpointMeta), TrainError> {
        let err =
            |file: &'static str, source: BoxError| TrainError::CheckpointFile { path: dir.to_owned(), file, source };
        let bytes = std::fs::read(dir.join("config.json")).map_err(|e| err("config.json", e.into()))?;
        let meta: CheckpointMeta = serde_json::from_slice(&bytes).map_err(|e| err("config.json", e.into()))?;
        let now = meta.config.text().schema_hash().to_string();
        if meta.feature_schema != now {
            return Err(TrainError::Checkpoint {
                path: dir.to_owned(),
                detail: format!(
                    "trained on feature schema {}, the front-ends now compute {now}: retrain",
                    meta.feature_schema
                ),
            });
        }
        let mut varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = Mimml::new(&meta.config, meta.spec.dims, vb)?;
        varmap.load(dir.join("weights.safetensors")).map_err(|e| err("weights.safetensors", e.into()))?;
        let t = Trained {
            model,
            varmap,
            spec: meta.spec.clone(),
            history: meta.history.clone(),
            best_epoch: meta.best_epoch,
            threshold: meta.threshold,
        };
        Ok((t, meta))
    }
}
