//! MIMML: Mutual Information Maximization with Multi-task Learning.
//!
//! * [`config`]: every hyper-parameter and the ablation variants;
//! * [`data`]: feature cache → normalised, padded batches;
//! * [`net`]: encoders (Linear → Conv1d → BiGRU → masked mean), gated fusion (gates → BiGRU +
//!   Conv1d), heads, and the MI estimators;
//! * [`losses`]: weighted BCE, InfoNCE, the Barber–Agakov bound (gradient-checked);
//! * [`train`]: deterministic training with early stopping, prediction, checkpoints.

pub mod config;
pub mod data;
pub mod export;
pub mod losses;
pub mod net;
pub mod train;
