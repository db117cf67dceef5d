//! Shared helpers of the benchmark binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A field of this process's `/proc/self/status` in kB (`VmHWM:` peak RSS, `VmRSS:`,
/// `RssAnon:`), 0 when it cannot be read (Linux only).
pub fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Wall time of the fastest of `n` calls of `f`, seconds.
pub fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Runs `scripts/SCRIPT ARGS` with the reference venv's `python`, on one core (no BLAS, OpenMP
/// or numba thread pools), and returns its stdout.
pub fn reference_script(python: &str, script: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new(python);
    for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"] {
        cmd.env(var, "1");
    }
    let out = cmd
        .arg(repo().join("scripts").join(script))
        .args(args)
        .output()
        .with_context(|| format!("running {python}"))?;
    if !out.status.success() {
        bail!("{script} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs `f` repeatedly for at least `budget` and returns calls per second (median of 5
/// rounds, to damp the noise of a shared 2-core machine).
pub fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < budget / 5 {
                for _ in 0..64 {
                    f();
                }
                n += 64;
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}
