//! Latency percentiles: the enrollment phase and the renewal herd report theirs the same way,
//! so both read the same summary.

use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// Nearest-rank percentiles of sorted values.
pub fn latency(sorted_ms: &[f64]) -> Latency {
    let pick = |p: f64| {
        if sorted_ms.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted_ms.len() as f64).ceil() as usize;
        sorted_ms[rank.clamp(1, sorted_ms.len()) - 1]
    };
    Latency {
        p50_ms: pick(50.0),
        p90_ms: pick(90.0),
        p99_ms: pick(99.0),
        max_ms: sorted_ms.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = latency(&v);
        assert_eq!(
            (l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(latency(&[]), Latency::default());
        assert_eq!(latency(&[7.0]).p99_ms, 7.0);
    }
}
