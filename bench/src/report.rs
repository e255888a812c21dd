//! The result of one run and everything written from it: the JSON file (every field), the
//! `.hgrm` percentile files, two hand-written SVG charts and one HTML page, plus the summary
//! table printed at the end.

use crate::driver::{RunOptions, Shared};
use crate::stats::{curve, hgrm, Hists, LatencySummary};
use crate::workload::Workload;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Backlog,
    Warmup,
    Measure,
    Drain,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Backlog => "backlog",
            Phase::Warmup => "warmup",
            Phase::Measure => "measure",
            Phase::Drain => "drain",
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimePoint {
    pub t_s: f64,
    pub phase: Phase,
    pub produce_msgs_per_s: f64,
    pub produce_mib_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mib_per_s: f64,
    pub publish_p99_ms: f64,
    pub e2e_p99_ms: f64,
    pub errors: u64,
}

/// Rates over the measurement window (after warmup, until producers stop).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Throughput {
    pub window_s: f64,
    pub produce_msgs: u64,
    pub produce_msgs_per_s: f64,
    pub produce_mib_per_s: f64,
    pub consume_msgs: u64,
    pub consume_msgs_per_s: f64,
    pub consume_mib_per_s: f64,
    /// CPU seconds the harness process used in the window, and that over the window: how
    /// many cores the load generator itself kept busy.
    pub harness_cpu_s: f64,
    pub harness_cores_used: f64,
}

/// Whole-run counts (warmup and drain included).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub sent_msgs: u64,
    pub produced_msgs: u64,
    pub produced_bytes: u64,
    pub consumed_msgs: u64,
    pub consumed_msgs_per_subscription: Vec<u64>,
    /// Every subscription read exactly what was acknowledged (true when there are none).
    pub produced_equals_consumed: bool,
    pub produce_errors: u64,
    pub consume_errors: u64,
    pub retries: u64,
    /// Kafka error code → how many times it was seen.
    pub error_codes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Files {
    pub json: String,
    pub publish_hgrm: String,
    pub publish_uncorrected_hgrm: String,
    pub e2e_hgrm: String,
    pub latency_svg: String,
    pub throughput_svg: String,
    pub html: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub tool: String,
    pub version: String,
    pub label: String,
    pub target: String,
    pub started_at_unix_ms: u64,
    pub harness_threads: usize,
    pub workload: Workload,
    pub throughput: Throughput,
    /// From the intended send time (coordinated-omission corrected at fixed rates).
    pub publish_latency: LatencySummary,
    /// From when the message was handed to the producer.
    pub publish_latency_uncorrected: LatencySummary,
    pub end_to_end_latency: LatencySummary,
    pub totals: Totals,
    pub timeseries: Vec<TimePoint>,
    pub files: Files,
    #[serde(skip)]
    pub hists: Hists,
}

impl RunResult {
    pub fn new(
        w: &Workload,
        opts: &RunOptions,
        throughput: Throughput,
        hists: Hists,
        timeseries: Vec<TimePoint>,
    ) -> RunResult {
        let started_at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            .saturating_sub(timeseries.last().map_or(0, |p| (p.t_s * 1000.0) as u64));
        RunResult {
            tool: "sluice-bench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            label: opts.label.clone(),
            target: opts.target.clone(),
            started_at_unix_ms,
            harness_threads: opts.threads,
            workload: w.clone(),
            throughput,
            publish_latency: LatencySummary::default(),
            publish_latency_uncorrected: LatencySummary::default(),
            end_to_end_latency: LatencySummary::default(),
            totals: Totals::default(),
            timeseries,
            files: Files::default(),
            hists,
        }
    }

    /// Totals and latency summaries, once the executors have stopped.
    pub fn finish(&mut self, s: &Shared) {
        let produced = s.produced_msgs.load(Ordering::SeqCst);
        let per_sub: Vec<u64> = if self.workload.subscriptions_per_topic == 0 {
            Vec::new()
        } else {
            s.consumed_by_subscription
                .iter()
                .map(|c| c.load(Ordering::SeqCst))
                .collect()
        };
        self.totals = Totals {
            sent_msgs: s.sent_msgs.load(Ordering::SeqCst),
            produced_msgs: produced,
            produced_bytes: s.produced_bytes.load(Ordering::SeqCst),
            consumed_msgs: s.consumed_msgs.load(Ordering::SeqCst),
            produced_equals_consumed: per_sub.iter().all(|c| *c == produced),
            consumed_msgs_per_subscription: per_sub,
            produce_errors: s.produce_errors.load(Ordering::SeqCst),
            consume_errors: s.consume_errors.load(Ordering::SeqCst),
            retries: s.retries.load(Ordering::SeqCst),
            error_codes: s
                .error_codes
                .lock()
                .expect("not poisoned")
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        };
        self.publish_latency = LatencySummary::of(&self.hists.publish);
        self.publish_latency_uncorrected = LatencySummary::of(&self.hists.publish_uncorrected);
        self.end_to_end_latency = LatencySummary::of(&self.hists.e2e);
    }

    /// Writes result.json, the .hgrm files, the SVG charts and report.html into `dir`.
    pub fn write(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = |f: &str| dir.join(f).display().to_string();
        self.files = Files {
            json: name("result.json"),
            publish_hgrm: name("publish-latency.hgrm"),
            publish_uncorrected_hgrm: name("publish-latency-uncorrected.hgrm"),
            e2e_hgrm: name("end-to-end-latency.hgrm"),
            latency_svg: name("latency.svg"),
            throughput_svg: name("throughput.svg"),
            html: name("report.html"),
        };
        let f = self.files.clone();
        write(&f.publish_hgrm, &hgrm(&self.hists.publish))?;
        write(
            &f.publish_uncorrected_hgrm,
            &hgrm(&self.hists.publish_uncorrected),
        )?;
        write(&f.e2e_hgrm, &hgrm(&self.hists.e2e))?;
        let lat = self.latency_svg();
        let tput = self.throughput_svg();
        write(&f.latency_svg, &lat)?;
        write(&f.throughput_svg, &tput)?;
        write(&f.html, &self.html(&lat, &tput))?;
        write(&f.json, &serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    fn latency_lines(&self) -> Vec<Line> {
        vec![
            Line::new("publish", "#1f77b4", curve(&self.hists.publish)),
            Line::new(
                "publish (uncorrected)",
                "#aec7e8",
                curve(&self.hists.publish_uncorrected),
            ),
            Line::new("end-to-end", "#d62728", curve(&self.hists.e2e)),
        ]
    }

    pub fn latency_svg(&self) -> String {
        percentile_chart(
            &format!("Latency by percentile — {}", self.label),
            &self.latency_lines(),
        )
    }

    pub fn throughput_svg(&self) -> String {
        let pts =
            |f: fn(&TimePoint) -> f64| self.timeseries.iter().map(|p| (p.t_s, f(p))).collect();
        let lines = vec![
            Line::new("produce msg/s", "#1f77b4", pts(|p| p.produce_msgs_per_s)),
            Line::new("consume msg/s", "#d62728", pts(|p| p.consume_msgs_per_s)),
        ];
        time_chart(
            &format!("Throughput over time — {}", self.label),
            "msg/s",
            &lines,
        )
    }

    pub fn summary_table(&self) -> String {
        let t = &self.throughput;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sluice-bench {} against {} ({}), measured over {:.1} s",
            self.workload.name, self.target, self.label, t.window_s
        );
        let _ = writeln!(s, "{:<24}{:>14}{:>10}", "throughput", "msg/s", "MiB/s");
        let _ = writeln!(
            s,
            "{:<24}{:>14.0}{:>10.2}",
            "produce", t.produce_msgs_per_s, t.produce_mib_per_s
        );
        let _ = writeln!(
            s,
            "{:<24}{:>14.0}{:>10.2}",
            "consume", t.consume_msgs_per_s, t.consume_mib_per_s
        );
        let _ = writeln!(
            s,
            "{:<24}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>11}",
            "latency (ms)", "p50", "p90", "p99", "p99.9", "p99.99", "max", "count"
        );
        for (name, l) in [
            ("publish", &self.publish_latency),
            ("publish (uncorrected)", &self.publish_latency_uncorrected),
            ("end-to-end", &self.end_to_end_latency),
        ] {
            let _ = writeln!(
                s,
                "{:<24}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>11}",
                name, l.p50_ms, l.p90_ms, l.p99_ms, l.p99_9_ms, l.p99_99_ms, l.max_ms, l.count
            );
        }
        let x = &self.totals;
        let _ = writeln!(
            s,
            "totals: produced {} (sent {}), consumed per subscription {:?} ({}), errors produce {} consume {}, retries {}, codes {:?}",
            x.produced_msgs,
            x.sent_msgs,
            x.consumed_msgs_per_subscription,
            if x.produced_equals_consumed { "all read" } else { "MISMATCH" },
            x.produce_errors,
            x.consume_errors,
            x.retries,
            x.error_codes
        );
        let _ = writeln!(
            s,
            "harness: {} thread(s), {:.2} cores busy during the window",
            self.harness_threads, t.harness_cores_used
        );
        s
    }

    fn html(&self, latency_svg: &str, throughput_svg: &str) -> String {
        let file = |p: &str| {
            Path::new(p)
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default()
        };
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>sluice-bench {name}</title>\
<style>body{{font-family:sans-serif;margin:1.5em}} pre{{background:#f6f6f6;padding:1em}} .row{{display:flex;flex-wrap:wrap;gap:1em}}</style></head><body>\
<h1>sluice-bench: {name} ({label})</h1><pre>{table}</pre><div class=\"row\"><div>{lat}</div><div>{tput}</div></div>\
<p>Files: <a href=\"{json}\">{json}</a>, <a href=\"{h1}\">{h1}</a>, <a href=\"{h2}\">{h2}</a>, <a href=\"{h3}\">{h3}</a></p></body></html>\n",
            name = esc(&self.workload.name),
            label = esc(&self.label),
            table = esc(&self.summary_table()),
            lat = latency_svg,
            tput = throughput_svg,
            json = file(&self.files.json),
            h1 = file(&self.files.publish_hgrm),
            h2 = file(&self.files.publish_uncorrected_hgrm),
            h3 = file(&self.files.e2e_hgrm),
        )
    }
}

fn write(path: &str, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {path}"))
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub struct Line {
    pub name: String,
    pub color: String,
    pub points: Vec<(f64, f64)>,
}

impl Line {
    pub fn new(name: &str, color: &str, points: Vec<(f64, f64)>) -> Line {
        Line {
            name: name.into(),
            color: color.into(),
            points,
        }
    }
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// The percentile axis ends at 99.9999 % (1/(1-p) = 10^6); p = 1 (the max) is drawn there.
const NINES_MAX: f64 = 6.0;

/// A "nice" axis maximum and step for values up to `max`.
fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Plots lines over an x range with ticks, a y axis from 0, and a legend.
fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    x_max: f64,
    x_ticks: &[(f64, String)],
    lines: &[Line],
) -> String {
    let y_top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (y_max, y_step) = nice_axis(y_top * 1.05);
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x / x_max).clamp(0.0, 1.0) * pw;
    let sy = |y: f64| TOP + ph - (y / y_max).clamp(0.0, 1.0) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\
<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\
<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
        W / 2.0,
        esc(title)
    );
    let mut y = 0.0;
    while y <= y_max + y_step / 2.0 {
        let py = sy(y);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#e5e5e5\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            fmt_num(y)
        );
        y += y_step;
    }
    for (x, label) in x_ticks {
        let px = sx(*x);
        let _ = write!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#e5e5e5\"/>\
<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + ph,
            TOP + ph + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#888\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
<text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        LEFT + pw / 2.0,
        H - 12.0,
        esc(x_label),
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (i, l) in lines.iter().enumerate() {
        if !l.points.is_empty() {
            let pts: Vec<String> = l
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>",
                l.color,
                pts.join(" ")
            );
        }
        let ly = TOP + 14.0 + i as f64 * 16.0;
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{}\" stroke-width=\"3\"/>\
<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT + 10.0,
            LEFT + 30.0,
            l.color,
            LEFT + 36.0,
            ly + 4.0,
            esc(&l.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Latency against percentile on the usual HdrHistogram axis: x = log10(1 / (1 - p)).
pub fn percentile_chart(title: &str, lines: &[Line]) -> String {
    let nines = |q: f64| {
        if q >= 1.0 {
            NINES_MAX
        } else {
            (1.0 / (1.0 - q)).log10().min(NINES_MAX)
        }
    };
    let mapped: Vec<Line> = lines
        .iter()
        .map(|l| {
            Line::new(
                &l.name,
                &l.color,
                l.points.iter().map(|(q, v)| (nines(*q), *v)).collect(),
            )
        })
        .collect();
    let ticks: Vec<(f64, String)> = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"]
        .iter()
        .enumerate()
        .map(|(i, l)| (i as f64, l.to_string()))
        .collect();
    chart(
        title,
        "percentile",
        "latency (ms)",
        NINES_MAX,
        &ticks,
        &mapped,
    )
}

pub fn time_chart(title: &str, y_label: &str, lines: &[Line]) -> String {
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(0.0, f64::max)
        .max(1.0);
    let (top, step) = nice_axis(x_max);
    let mut ticks = Vec::new();
    let mut x = 0.0;
    while x <= top + step / 2.0 {
        ticks.push((x, format!("{x:.0}")));
        x += step;
    }
    chart(title, "time (s)", y_label, top, &ticks, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        assert_eq!(nice_axis(9.3), (10.0, 2.0));
        assert_eq!(nice_axis(123_000.0), (125_000.0, 25_000.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
    }

    #[test]
    fn charts_are_well_formed_svg() {
        let svg = percentile_chart(
            "t <x>",
            &[Line::new(
                "a",
                "#000",
                vec![(0.0, 1.0), (0.99, 5.0), (1.0, 9.0)],
            )],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &lt;x&gt;"));
        assert!(svg.contains("<polyline"));
        let svg = time_chart("t", "msg/s", &[Line::new("a", "#000", vec![])]);
        assert!(svg.contains("</svg>"));
    }
}
