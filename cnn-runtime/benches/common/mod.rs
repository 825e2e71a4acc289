//! What the benchmarks share: the quick timer of their printed tables, the
//! Criterion configuration, and `main` (each bench is its own binary and
//! uses what it needs of this module).

#![allow(dead_code)]

use criterion::Criterion;
use std::time::{Duration, Instant};

/// Seconds per call of `f`, best of `blocks` blocks of `calls` calls (the
/// least disturbed block on a shared machine).
pub fn best(calls: usize, blocks: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..blocks {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        best = best.min(start.elapsed());
    }
    best.as_secs_f64() / calls as f64
}

/// Criterion with a short warm-up and one second per benchmark, no plots.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .without_plots()
}

/// A bench binary's `main`: `table` (the quick printed rates) when run by
/// `cargo bench` (`cargo test --benches` runs it without `--bench`: no
/// table), then the Criterion group `benches`.
pub fn main(table: impl FnOnce(), benches: fn()) {
    if std::env::args().any(|arg| arg == "--bench") {
        table();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
