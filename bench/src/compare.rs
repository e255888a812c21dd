//! `sluice-bench compare`: the same workload against several targets, alternately, for
//! several rounds; each metric reported per target and as a ratio to the first target
//! with its spread across rounds.

use crate::driver::{self, RunOptions};
use crate::report::{esc, percentile_chart, Line, RunResult};
use crate::stats::{curve, Hists};
use crate::workload::Workload;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    pub addr: String,
}

pub fn parse_target(s: &str) -> Result<Target> {
    match s.split_once('=') {
        Some((l, a)) if !l.is_empty() && a.contains(':') => Ok(Target {
            label: l.into(),
            addr: a.into(),
        }),
        _ => anyhow::bail!("--target {s:?}: expected NAME=HOST:PORT"),
    }
}

/// One metric across targets and rounds.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    pub metric: String,
    pub higher_is_better: bool,
    /// Per target (in --target order): the value of each round.
    pub values: Vec<Vec<f64>>,
    pub means: Vec<f64>,
    /// Per other target j: first / j per round, then mean, min, max, stddev of that ratio.
    pub ratios: Vec<RatioStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RatioStats {
    pub against: String,
    pub per_round: Vec<f64>,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub stddev: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompareResult {
    pub workload: String,
    pub targets: Vec<String>,
    pub rounds: usize,
    pub rows: Vec<MetricRow>,
    pub runs: Vec<String>,
}

type Metric = (&'static str, bool, fn(&RunResult) -> f64);

const METRICS: [Metric; 12] = [
    ("produce msg/s", true, |r| r.throughput.produce_msgs_per_s),
    ("produce MiB/s", true, |r| r.throughput.produce_mib_per_s),
    ("consume msg/s", true, |r| r.throughput.consume_msgs_per_s),
    ("consume MiB/s", true, |r| r.throughput.consume_mib_per_s),
    ("publish p50 ms", false, |r| r.publish_latency.p50_ms),
    ("publish p99 ms", false, |r| r.publish_latency.p99_ms),
    ("publish p99.9 ms", false, |r| r.publish_latency.p99_9_ms),
    ("publish max ms", false, |r| r.publish_latency.max_ms),
    ("end-to-end p50 ms", false, |r| r.end_to_end_latency.p50_ms),
    ("end-to-end p99 ms", false, |r| r.end_to_end_latency.p99_ms),
    ("end-to-end p99.9 ms", false, |r| {
        r.end_to_end_latency.p99_9_ms
    }),
    ("end-to-end max ms", false, |r| r.end_to_end_latency.max_ms),
];

pub struct CompareOptions {
    pub rounds: usize,
    pub threads: usize,
    pub pause_s: u64,
}

pub fn run(
    w: &Workload,
    payload: &[u8],
    targets: &[Target],
    opts: &CompareOptions,
    out: &Path,
) -> Result<CompareResult> {
    if targets.len() < 2 {
        anyhow::bail!("compare needs at least two --target NAME=HOST:PORT");
    }
    // results[target][round]
    let mut results: Vec<Vec<RunResult>> = targets.iter().map(|_| Vec::new()).collect();
    let mut runs = Vec::new();
    for round in 0..opts.rounds {
        // Alternate the order each round so that drift (page cache, thermal) does not
        // always favour the same target.
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for ti in order {
            let t = &targets[ti];
            eprintln!(
                "== round {}/{}: {} ({})",
                round + 1,
                opts.rounds,
                t.label,
                t.addr
            );
            let ropts = RunOptions {
                target: t.addr.clone(),
                label: format!("{} r{}", t.label, round + 1),
                threads: opts.threads,
                quiet: false,
            };
            let mut r = driver::run(w, payload, &ropts)
                .map_err(|e| anyhow::anyhow!("{} ({}): {e:#}", t.label, t.addr))?;
            let dir = out.join(format!("round-{}", round + 1)).join(&t.label);
            r.write(&dir)?;
            eprint!("{}", r.summary_table());
            runs.push(dir.display().to_string());
            results[ti].push(r);
            std::thread::sleep(Duration::from_secs(opts.pause_s));
        }
    }
    let rows = METRICS
        .iter()
        .map(|(name, higher, f)| {
            let values: Vec<Vec<f64>> = results
                .iter()
                .map(|rs| rs.iter().map(f).collect())
                .collect();
            let means = values.iter().map(|v| mean(v)).collect();
            let ratios = (1..targets.len())
                .map(|j| {
                    let per_round: Vec<f64> = values[0]
                        .iter()
                        .zip(&values[j])
                        .map(|(a, b)| if *b != 0.0 { a / b } else { f64::NAN })
                        .collect();
                    ratio_stats(&targets[j].label, per_round)
                })
                .collect();
            MetricRow {
                metric: name.to_string(),
                higher_is_better: *higher,
                values,
                means,
                ratios,
            }
        })
        .collect();
    let c = CompareResult {
        workload: w.name.clone(),
        targets: targets.iter().map(|t| t.label.clone()).collect(),
        rounds: opts.rounds,
        rows,
        runs,
    };
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("compare.json"), serde_json::to_string_pretty(&c)?)?;
    let md = markdown(&c);
    std::fs::write(out.join("compare.md"), &md)?;
    std::fs::write(out.join("compare.html"), html(&c, &md, &results))?;
    Ok(c)
}

fn mean(v: &[f64]) -> f64 {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

pub fn ratio_stats(against: &str, per_round: Vec<f64>) -> RatioStats {
    let finite: Vec<f64> = per_round
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    let m = mean(&finite);
    let var = if finite.len() > 1 {
        finite.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (finite.len() - 1) as f64
    } else {
        0.0
    };
    RatioStats {
        against: against.into(),
        mean: m,
        min: finite.iter().copied().fold(f64::NAN, f64::min),
        max: finite.iter().copied().fold(f64::NAN, f64::max),
        stddev: var.sqrt(),
        per_round,
    }
}

pub fn markdown(c: &CompareResult) -> String {
    let mut s = String::new();
    let first = &c.targets[0];
    let _ = writeln!(
        s,
        "Workload `{}`, {} round(s), targets alternated each round.\n",
        c.workload, c.rounds
    );
    let mut head = String::from("| metric |");
    let mut rule = String::from("|---|");
    for t in &c.targets {
        let _ = write!(head, " {t} (mean) |");
        rule.push_str("---:|");
    }
    for t in &c.targets[1..] {
        let _ = write!(head, " {first}/{t} mean [min–max] ± sd |");
        rule.push_str("---:|");
    }
    let _ = writeln!(s, "{head}\n{rule}");
    for r in &c.rows {
        let mut line = format!("| {} |", r.metric);
        for m in &r.means {
            let _ = write!(line, " {} |", fmt(*m));
        }
        for x in &r.ratios {
            let _ = write!(
                line,
                " {:.2} [{:.2}–{:.2}] ± {:.2} |",
                x.mean, x.min, x.max, x.stddev
            );
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(
        s,
        "\nRatios are {first} ÷ other, paired per round: above 1 is better for {first} on throughput rows, worse on latency rows."
    );
    s
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn html(c: &CompareResult, md: &str, results: &[Vec<RunResult>]) -> String {
    const COLORS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let mut pub_lines = Vec::new();
    let mut e2e_lines = Vec::new();
    for (i, (t, rs)) in c.targets.iter().zip(results).enumerate() {
        let mut merged = Hists::default();
        for r in rs {
            merged.add(&r.hists);
        }
        let color = COLORS[i % COLORS.len()];
        pub_lines.push(Line::new(t, color, curve(&merged.publish)));
        e2e_lines.push(Line::new(t, color, curve(&merged.e2e)));
    }
    let runs: String = c
        .runs
        .iter()
        .map(|r| format!("<li><a href=\"{0}/report.html\">{0}</a></li>", esc(r)))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>compare {w}</title>\
<style>body{{font-family:sans-serif;margin:1.5em}} pre{{background:#f6f6f6;padding:1em}} .row{{display:flex;flex-wrap:wrap;gap:1em}}</style></head><body>\
<h1>sluice-bench compare: {w}</h1><pre>{md}</pre><div class=\"row\"><div>{a}</div><div>{b}</div></div><h2>Runs</h2><ul>{runs}</ul></body></html>\n",
        w = esc(&c.workload),
        md = esc(md),
        a = percentile_chart("Publish latency, all rounds", &pub_lines),
        b = percentile_chart("End-to-end latency, all rounds", &e2e_lines),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_spread() {
        let r = ratio_stats("k", vec![1.0, 2.0, 3.0]);
        assert_eq!((r.mean, r.min, r.max), (2.0, 1.0, 3.0));
        assert!((r.stddev - 1.0).abs() < 1e-9);
        let r = ratio_stats("k", vec![f64::NAN, 4.0]);
        assert_eq!((r.mean, r.stddev), (4.0, 0.0));
    }

    #[test]
    fn targets_parse() {
        let t = parse_target("sluice=127.0.0.1:9092").unwrap();
        assert_eq!(
            (t.label.as_str(), t.addr.as_str()),
            ("sluice", "127.0.0.1:9092")
        );
        assert!(parse_target("127.0.0.1:9092").is_err());
    }
}
