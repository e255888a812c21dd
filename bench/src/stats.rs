//! Latency bookkeeping: HDR histograms in microseconds, their summaries, and the `.hgrm`
//! percentile-distribution text that HdrHistogram's tools (and plotters) read.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

/// Highest trackable latency: one hour, in µs. Larger values saturate (and show as max).
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// The three latency histograms one run keeps, all in µs.
#[derive(Debug, Clone)]
pub struct Hists {
    /// Publish latency measured from the *intended* send time (coordinated-omission
    /// corrected for fixed-rate runs; equal to the uncorrected one for "max").
    pub publish: Histogram<u64>,
    /// Publish latency from when the message was actually handed to the producer.
    pub publish_uncorrected: Histogram<u64>,
    /// End-to-end: intended send time carried in the record → consumer receipt.
    pub e2e: Histogram<u64>,
}

impl Default for Hists {
    fn default() -> Self {
        Hists {
            publish: new_histogram(),
            publish_uncorrected: new_histogram(),
            e2e: new_histogram(),
        }
    }
}

impl Hists {
    pub fn add(&mut self, other: &Hists) {
        // Same bounds on both sides, so addition cannot fail.
        self.publish.add(&other.publish).expect("same bounds");
        self.publish_uncorrected
            .add(&other.publish_uncorrected)
            .expect("same bounds");
        self.e2e.add(&other.e2e).expect("same bounds");
    }

    pub fn reset(&mut self) {
        self.publish.reset();
        self.publish_uncorrected.reset();
        self.e2e.reset();
    }

    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.publish_uncorrected.is_empty() && self.e2e.is_empty()
    }
}

/// Records one value, clamping 0 to the histogram's lowest value (1 µs).
pub fn record_us(h: &mut Histogram<u64>, value_us: u64) {
    h.saturating_record(value_us.max(1));
}

/// The percentiles every report shows, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub p99_99_ms: f64,
    pub max_ms: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p99_9_ms: ms(h.value_at_quantile(0.999)),
            p99_99_ms: ms(h.value_at_quantile(0.9999)),
            max_ms: ms(h.max()),
        }
    }
}

/// HdrHistogram's percentile distribution text (Java `outputPercentileDistribution` with 5
/// ticks per half distance and values scaled from µs to ms).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    out.push_str("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = ms(h.highest_equivalent(v.value_iterated_to()));
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / 1000.0, h.stdev() / 1000.0, ms(h.max()))
    };
    let sub_buckets = (2.0 * 10f64.powi(SIGNIFICANT_DIGITS as i32))
        .log2()
        .ceil()
        .exp2() as u64;
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {sub_buckets:12}]",
        h.buckets()
    );
    out
}

/// (percentile as 0..1, value in ms) points for the latency curve chart.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            (
                v.quantile_iterated_to(),
                ms(h.highest_equivalent(v.value_iterated_to())),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_known_distribution() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            record_us(&mut h, v * 10); // 10 µs .. 100 ms, uniform
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 10_000);
        // 3 significant digits: within 0.1 %.
        assert!((s.p50_ms - 50.0).abs() < 0.06, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert!(s.p50_ms <= s.p90_ms && s.p90_ms <= s.p99_ms && s.p99_ms <= s.p99_9_ms);
        assert!(s.p99_9_ms <= s.p99_99_ms && s.p99_99_ms <= s.max_ms);
    }

    #[test]
    fn merging_interval_histograms_equals_recording_once() {
        let mut a = Hists::default();
        let mut b = Hists::default();
        let mut all = Hists::default();
        for v in 0..5000u64 {
            let (dst, val) = if v % 3 == 0 {
                (&mut a, v)
            } else {
                (&mut b, v * 7)
            };
            record_us(&mut dst.publish, val);
            record_us(&mut all.publish, val);
        }
        let mut merged = Hists::default();
        merged.add(&a);
        merged.add(&b);
        assert_eq!(
            LatencySummary::of(&merged.publish),
            LatencySummary::of(&all.publish)
        );
        merged.reset();
        assert!(merged.is_empty());
    }

    #[test]
    fn zero_and_huge_values_are_clamped_not_lost() {
        let mut h = new_histogram();
        record_us(&mut h, 0);
        record_us(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= LATENCY_MAX_US);
    }

    #[test]
    fn hgrm_has_the_java_layout() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            record_us(&mut h, v * 1000);
        }
        let text = hgrm(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("Value") && lines[0].contains("1/(1-Percentile)"));
        assert_eq!(lines[1], "");
        // Every data line: value, percentile, cumulative count (and 1/(1-p) except the last).
        let data: Vec<Vec<&str>> = lines[2..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(data.len() > 10);
        assert_eq!(data.last().unwrap().len(), 3);
        assert_eq!(data.last().unwrap()[2], "1000");
        assert!(data[..data.len() - 1].iter().all(|f| f.len() == 4));
        let counts: Vec<u64> = data.iter().map(|f| f[2].parse().unwrap()).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            text.contains("#[Max     =     1000.447, Total count    =         1000]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048"));
    }
}
