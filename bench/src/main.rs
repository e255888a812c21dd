//! sluice-bench: a load generator for any Kafka endpoint, with HDR latency histograms,
//! reports, a do-nothing sink to measure the driver alone, and A/B comparison.

mod compare;
mod conn;
mod consumer;
mod driver;
mod kafka;
mod producer;
mod rate;
mod report;
mod sink;
mod stats;
mod workload;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use workload::Workload;

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Kafka-protocol load generator with latency histograms"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Workload file (TOML; see bench/workloads/).
    #[arg(long)]
    workload: PathBuf,
    /// Output folder (default: sluice-bench-results/<workload>-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Executor threads (one core each) for producers and consumers.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Override the workload's duration_s.
    #[arg(long)]
    duration_s: Option<u64>,
    /// Override the workload's warmup_s.
    #[arg(long)]
    warmup_s: Option<u64>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a workload against one target.
    Run {
        #[command(flatten)]
        common: Common,
        /// Kafka bootstrap address HOST:PORT.
        #[arg(long)]
        target: String,
        /// Name shown in progress lines and reports.
        #[arg(long, default_value = "target")]
        label: String,
        /// No per-second progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Run a workload against several targets alternately and report ratios.
    Compare {
        #[command(flatten)]
        common: Common,
        /// NAME=HOST:PORT, two or more; ratios are the first target over each other.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Pause between runs, seconds.
        #[arg(long, default_value_t = 2)]
        pause_s: u64,
    },
    /// A Kafka endpoint that answers Produce at once and stores nothing.
    Sink {
        #[arg(long, default_value = "127.0.0.1:39292")]
        listen: String,
    },
    /// Validate workload files.
    Check { workloads: Vec<PathBuf> },
}

fn load(common: &Common) -> Result<(Workload, Vec<u8>)> {
    let (mut w, payload) = Workload::load(&common.workload)?;
    if let Some(d) = common.duration_s {
        w.duration_s = d;
    }
    if let Some(d) = common.warmup_s {
        w.warmup_s = d;
    }
    w.validate()?;
    Ok((w, payload))
}

fn out_dir(common: &Common, w: &Workload) -> PathBuf {
    common.out.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Path::new("sluice-bench-results").join(format!("{}-{secs}", w.name))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined with ": ".
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("sluice-bench: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Run {
            common,
            target,
            label,
            quiet,
        } => {
            let (w, payload) = load(&common)?;
            let opts = driver::RunOptions {
                target,
                label,
                threads: common.threads,
                quiet,
            };
            let mut r = driver::run(&w, &payload, &opts)?;
            let dir = out_dir(&common, &w);
            r.write(&dir)?;
            print!("{}", r.summary_table());
            println!("report: {}", r.files.html);
            Ok(())
        }
        Cmd::Compare {
            common,
            targets,
            rounds,
            pause_s,
        } => {
            let (w, payload) = load(&common)?;
            let targets = targets
                .iter()
                .map(|t| compare::parse_target(t))
                .collect::<Result<Vec<_>>>()?;
            if rounds == 0 {
                anyhow::bail!("--rounds must be at least 1");
            }
            let dir = out_dir(&common, &w);
            let opts = compare::CompareOptions {
                rounds,
                threads: common.threads,
                pause_s,
            };
            let c = compare::run(&w, &payload, &targets, &opts, &dir)?;
            print!("{}", compare::markdown(&c));
            println!("report: {}", dir.join("compare.html").display());
            Ok(())
        }
        Cmd::Sink { listen } => sink::serve(&listen),
        Cmd::Check { workloads } => {
            for p in workloads {
                let (w, _) = Workload::load(&p)?;
                println!("{}: ok ({})", p.display(), w.name);
            }
            Ok(())
        }
    }
}
