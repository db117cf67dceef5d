//! # train — the ML workbench's library
//!
//! * [`mimml`]: MIMML in candle — network, MI and multi-task losses, deterministic training,
//!   checkpoints, ONNX export.
//! * [`metrics`]: screening metrics with bootstrap confidence intervals, ROC and reliability.
//! * [`workbench`]: the rules the `mimml-lab` commands follow — where a corpus's feature cache
//!   lives and when it is reused, which session is a bundle's golden example, the ablation
//!   report.
//!
//! Architecture invariant: only the workbench (`lab`), benchmarks and tests link this crate;
//! the device and the clinic tool `mimml` never do (`.ci/run` checks with `cargo tree`).

pub mod metrics;
pub mod mimml;
pub mod workbench;
