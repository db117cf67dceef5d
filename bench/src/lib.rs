//! Shared helpers of the benchmark binaries.

use std::time::{Duration, Instant};

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
