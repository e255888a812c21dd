//! One run of a workload against one target: set up topics, start the producers and
//! consumers on glommio executors, drive the phases (backlog → warmup → measure → drain),
//! print progress every second, and collect the result.
//!
//! Threads: the calling thread drives phases and progress; `threads` executor threads (one
//! core each) run the producers and consumers. They share only `Shared` (atomics, and a
//! mutex the executors take a few times a second to hand over their interval histograms).

use crate::consumer::{self, ConsumerCfg};
use crate::kafka::AdminClient;
use crate::producer::{self, ProducerCfg};
use crate::report::{Phase, RunResult, Throughput, TimePoint};
use crate::stats::{Hists, LatencySummary};
use crate::workload::{ConsumeFrom, Rate, Workload};
use anyhow::{bail, Context, Result};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// io_uring buffer memory per executor; small, so the default `ulimit -l` (8 MiB) suffices.
const IO_MEMORY_BYTES: usize = 512 * 1024;
/// How often an executor hands its interval histograms to the driver thread.
const HIST_FLUSH_MS: u64 = 200;
/// Longest wait for a backlog to be produced before the catch-up phase.
const BACKLOG_WAIT_MAX_S: u64 = 1800;
const TOPIC_READY_WAIT_S: u64 = 120;

/// A clock shared by producers and consumers of one process: Unix time in µs, advanced by a
/// monotonic clock so that it never steps.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_unix_us: u64,
}

impl Clock {
    pub fn new() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Clock {
            start: Instant::now(),
            start_unix_us: unix,
        }
    }
    pub fn now_us(&self) -> u64 {
        self.start_unix_us + self.start.elapsed().as_micros() as u64
    }
}

/// Everything the executors and the driver thread share.
pub struct Shared {
    pub clock: Clock,
    pub stop_producers: AtomicBool,
    pub consumers_go: AtomicBool,
    pub stop_consumers: AtomicBool,
    pub abort: AtomicBool,
    pub sent_msgs: AtomicU64,
    pub produced_msgs: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub produce_errors: AtomicU64,
    pub retries: AtomicU64,
    pub consumed_msgs: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub consume_errors: AtomicU64,
    pub consumed_by_subscription: Vec<AtomicU64>,
    pub producers_done: AtomicUsize,
    pub hists: Mutex<Hists>,
    pub error_codes: Mutex<BTreeMap<i16, u64>>,
    pub failures: Mutex<Vec<String>>,
}

impl Shared {
    pub fn note_error_code(&self, code: i16) {
        *self
            .error_codes
            .lock()
            .expect("not poisoned")
            .entry(code)
            .or_default() += 1;
    }
    fn fail(&self, reason: String) {
        self.failures.lock().expect("not poisoned").push(reason);
        self.abort.store(true, Ordering::SeqCst);
    }
}

/// Per-executor histograms, merged into `Shared::hists` every HIST_FLUSH_MS.
/// Lives on: one executor.
#[derive(Default)]
pub struct LocalStats {
    pub hists: RefCell<Hists>,
}

impl LocalStats {
    fn flush(&self, shared: &Shared) {
        let mut local = self.hists.borrow_mut();
        if local.is_empty() {
            return;
        }
        shared.hists.lock().expect("not poisoned").add(&local);
        local.reset();
    }
}

#[derive(Debug, Clone)]
enum Job {
    Producer(ProducerCfg),
    Consumer(ConsumerCfg),
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub target: String,
    pub label: String,
    pub threads: usize,
    pub quiet: bool,
}

#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    produced_msgs: u64,
    produced_bytes: u64,
    consumed_msgs: u64,
    consumed_bytes: u64,
    errors: u64,
    cpu_s: f64,
}

fn snapshot(s: &Shared) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        produced_msgs: s.produced_msgs.load(Ordering::Relaxed),
        produced_bytes: s.produced_bytes.load(Ordering::Relaxed),
        consumed_msgs: s.consumed_msgs.load(Ordering::Relaxed),
        consumed_bytes: s.consumed_bytes.load(Ordering::Relaxed),
        errors: s.produce_errors.load(Ordering::Relaxed) + s.consume_errors.load(Ordering::Relaxed),
        cpu_s: process_cpu_s(),
    }
}

/// CPU time (user + system) this process has used, from /proc/self/stat (USER_HZ = 100 on
/// Linux); 0 where unavailable.
pub fn process_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

const MIB: f64 = 1024.0 * 1024.0;

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

pub fn run(w: &Workload, payload: &[u8], opts: &RunOptions) -> Result<RunResult> {
    let subscriptions = w.subscriptions_per_topic as usize;
    let mut admin = AdminClient::connect(&opts.target)?;
    admin.check_versions(subscriptions > 0)?;
    let clock = Clock::new();
    let run_id = clock.now_us() % 1_000_000_000;
    let topics: Vec<String> = (0..w.topics)
        .map(|i| format!("sluice-bench-{}-{run_id}-{i}", w.name))
        .collect();
    admin.create_topics(
        &topics,
        w.partitions_per_topic,
        Duration::from_secs(TOPIC_READY_WAIT_S),
    )?;

    let payload = Arc::new(payload.to_vec());
    let producers = w.producers() as usize;
    let mut jobs = Vec::new();
    for (ti, topic) in topics.iter().enumerate() {
        for pi in 0..w.producers_per_topic {
            jobs.push(Job::Producer(ProducerCfg {
                addr: opts.target.clone(),
                topic: topic.clone(),
                partitions: w.partitions_per_topic,
                rate_msgs_per_s: match w.producer_rate {
                    Rate::Max => None,
                    Rate::Fixed(r) => Some(r / producers as f64),
                },
                acks: w.acks.0,
                batch_bytes: w.batch_size,
                linger_us: w.linger_ms * 1000,
                max_in_flight: w.max_in_flight,
                key_distribution: w.key_distribution,
                payload: payload.clone(),
                seed: 0x9e37_79b9_7f4a_7c15u64.wrapping_mul((ti * 1000 + pi as usize + 1) as u64),
            }));
        }
    }
    let mut consumer_jobs = Vec::new();
    for topic in &topics {
        if subscriptions == 0 {
            break;
        }
        let ts = match w.consume_from {
            ConsumeFrom::Earliest => -2,
            ConsumeFrom::Latest => -1,
        };
        let starts = admin.list_offsets(topic, w.partitions_per_topic, ts)?;
        for s in 0..subscriptions {
            for c in 0..w.consumers_per_subscription {
                let assignment: Vec<(i32, i64)> = (0..w.partitions_per_topic)
                    .filter(|p| p % w.consumers_per_subscription == c)
                    .map(|p| (p as i32, starts[p as usize]))
                    .collect();
                consumer_jobs.push(Job::Consumer(ConsumerCfg {
                    addr: opts.target.clone(),
                    topic: topic.clone(),
                    assignment,
                    subscription: s,
                    max_wait_ms: w.fetch_max_wait_ms,
                    min_bytes: w.fetch_min_bytes,
                }));
            }
        }
    }
    let consumers = consumer_jobs.len();
    drop(admin);

    let shared = Arc::new(Shared {
        clock,
        stop_producers: AtomicBool::new(false),
        consumers_go: AtomicBool::new(w.consumer_backlog_size_mb == 0),
        stop_consumers: AtomicBool::new(false),
        abort: AtomicBool::new(false),
        sent_msgs: AtomicU64::new(0),
        produced_msgs: AtomicU64::new(0),
        produced_bytes: AtomicU64::new(0),
        produce_errors: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        consumed_msgs: AtomicU64::new(0),
        consumed_bytes: AtomicU64::new(0),
        consume_errors: AtomicU64::new(0),
        consumed_by_subscription: (0..subscriptions.max(1))
            .map(|_| AtomicU64::new(0))
            .collect(),
        producers_done: AtomicUsize::new(0),
        hists: Mutex::new(Hists::default()),
        error_codes: Mutex::new(BTreeMap::new()),
        failures: Mutex::new(Vec::new()),
    });

    // Consumers first, interleaved with producers, so every executor gets a share of both.
    let threads = opts.threads.max(1);
    let mut per_thread: Vec<Vec<Job>> = vec![Vec::new(); threads];
    for (i, job) in consumer_jobs.into_iter().chain(jobs).enumerate() {
        per_thread[i % threads].push(job);
    }
    let mut handles = Vec::new();
    for (i, jobs) in per_thread.into_iter().enumerate() {
        if jobs.is_empty() {
            continue;
        }
        let shared = shared.clone();
        let h = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("bench-{i}"))
            .io_memory(IO_MEMORY_BYTES)
            .spawn(move || executor_main(shared, jobs))
            .map_err(|e| anyhow::anyhow!("cannot start executor {i}: {e} (is io_uring available and `ulimit -l` at least 1 MiB?)"))?;
        handles.push(h);
    }

    let result = drive(w, opts, &shared, producers, consumers);
    shared.stop_producers.store(true, Ordering::SeqCst);
    shared.stop_consumers.store(true, Ordering::SeqCst);
    shared.consumers_go.store(true, Ordering::SeqCst);
    for h in handles {
        if h.join().is_err() {
            shared.fail("an executor thread panicked".into());
        }
    }
    let mut result = result?;
    if let Some(first) = shared.failures.lock().expect("not poisoned").first() {
        bail!("{first}");
    }
    // Histogram data handed over after the driver's last tick.
    let last = std::mem::take(&mut *shared.hists.lock().expect("not poisoned"));
    result.hists.add(&last);
    result.finish(&shared);
    Ok(result)
}

async fn executor_main(shared: Arc<Shared>, jobs: Vec<Job>) {
    let stats = Rc::new(LocalStats::default());
    let flusher = {
        let (shared, stats) = (shared.clone(), stats.clone());
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(HIST_FLUSH_MS)).await;
                stats.flush(&shared);
            }
        })
    };
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let (shared, stats) = (shared.clone(), stats.clone());
            glommio::spawn_local(async move {
                let (what, r) = match job {
                    Job::Producer(cfg) => {
                        let r = producer::run(shared.clone(), cfg, stats).await;
                        shared.producers_done.fetch_add(1, Ordering::SeqCst);
                        ("producer", r)
                    }
                    Job::Consumer(cfg) => {
                        ("consumer", consumer::run(shared.clone(), cfg, stats).await)
                    }
                };
                if let Err(e) = r {
                    shared.fail(format!("{what}: {e:#}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    drop(flusher);
    stats.flush(&shared);
}

/// The driver thread: phases, progress line, time series. Returns the result without its
/// totals (filled in by `RunResult::finish` after the executors stopped).
fn drive(
    w: &Workload,
    opts: &RunOptions,
    shared: &Shared,
    producers: usize,
    consumers: usize,
) -> Result<RunResult> {
    let start = Instant::now();
    let mut phase = if w.consumer_backlog_size_mb > 0 {
        Phase::Backlog
    } else {
        Phase::Warmup
    };
    let mut phase_start = start;
    let mut prev = snapshot(shared);
    let mut measure_start: Option<Snapshot> = None;
    if phase == Phase::Warmup && w.warmup_s == 0 {
        phase = Phase::Measure;
        measure_start = Some(prev);
    }
    let mut measure_end: Option<Snapshot> = None;
    let mut total = Hists::default();
    let mut series = Vec::new();
    let backlog_bytes = w.consumer_backlog_size_mb * 1024 * 1024;
    let mut tick = 0u64;
    loop {
        tick += 1;
        let next = start + Duration::from_secs(tick);
        while Instant::now() < next {
            if shared.abort.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(
                Duration::from_millis(20).min(next.saturating_duration_since(Instant::now())),
            );
        }
        if shared.abort.load(Ordering::Relaxed) {
            let f = shared.failures.lock().expect("not poisoned");
            bail!("{}", f.first().cloned().unwrap_or_else(|| "aborted".into()));
        }
        let now = snapshot(shared);
        let interval = std::mem::take(&mut *shared.hists.lock().expect("not poisoned"));
        let secs = now.at.duration_since(prev.at).as_secs_f64();
        let point = TimePoint {
            t_s: now.at.duration_since(start).as_secs_f64(),
            phase,
            produce_msgs_per_s: rate(now.produced_msgs - prev.produced_msgs, secs),
            produce_mib_per_s: rate(now.produced_bytes - prev.produced_bytes, secs) / MIB,
            consume_msgs_per_s: rate(now.consumed_msgs - prev.consumed_msgs, secs),
            consume_mib_per_s: rate(now.consumed_bytes - prev.consumed_bytes, secs) / MIB,
            publish_p99_ms: LatencySummary::of(&interval.publish).p99_ms,
            e2e_p99_ms: LatencySummary::of(&interval.e2e).p99_ms,
            errors: now.errors - prev.errors,
        };
        if !opts.quiet {
            eprintln!(
                "[{}] {:>5.0}s {:<8} pub {:>9.0} msg/s {:>7.1} MiB/s p99 {:>8.2} ms | cons {:>9.0} msg/s {:>7.1} MiB/s e2e p99 {:>8.2} ms | err {}",
                opts.label,
                point.t_s,
                phase.name(),
                point.produce_msgs_per_s,
                point.produce_mib_per_s,
                point.publish_p99_ms,
                point.consume_msgs_per_s,
                point.consume_mib_per_s,
                point.e2e_p99_ms,
                point.errors
            );
        }
        series.push(point);
        if matches!(phase, Phase::Measure | Phase::Drain) {
            total.add(&interval);
        }
        prev = now;
        // Ticks land a little after each whole second; a 100 ms tolerance keeps a phase from
        // running one tick long.
        let in_phase = now.at.duration_since(phase_start) + Duration::from_millis(100);
        match phase {
            Phase::Backlog => {
                if now.produced_bytes >= backlog_bytes {
                    shared.consumers_go.store(true, Ordering::SeqCst);
                    phase_start = now.at;
                    if w.warmup_s == 0 {
                        // The catch-up itself is what is measured: no tick may swallow it.
                        phase = Phase::Measure;
                        measure_start = Some(now);
                    } else {
                        phase = Phase::Warmup;
                    }
                } else if in_phase > Duration::from_secs(BACKLOG_WAIT_MAX_S) {
                    bail!(
                        "the backlog of {} MiB was not produced within {BACKLOG_WAIT_MAX_S} s",
                        w.consumer_backlog_size_mb
                    );
                }
            }
            Phase::Warmup => {
                if in_phase >= Duration::from_secs(w.warmup_s) {
                    phase = Phase::Measure;
                    phase_start = now.at;
                    measure_start = Some(now);
                }
            }
            Phase::Measure => {
                if in_phase >= Duration::from_secs(w.duration_s) {
                    shared.stop_producers.store(true, Ordering::SeqCst);
                    measure_end = Some(now);
                    phase = Phase::Drain;
                    phase_start = now.at;
                }
            }
            Phase::Drain => {
                let producers_done = shared.producers_done.load(Ordering::SeqCst) >= producers;
                let produced = shared.produced_msgs.load(Ordering::SeqCst);
                let caught_up = shared
                    .consumed_by_subscription
                    .iter()
                    .all(|c| c.load(Ordering::SeqCst) >= produced);
                if producers_done && (consumers == 0 || caught_up) {
                    break;
                }
                if in_phase > Duration::from_secs(w.drain_timeout_s) {
                    eprintln!(
                        "[{}] drain timeout: consumers did not read everything within {} s",
                        opts.label, w.drain_timeout_s
                    );
                    break;
                }
            }
        }
    }
    let (m0, m1) = (
        measure_start.context("no measurement phase")?,
        measure_end.context("no measurement end")?,
    );
    let secs = m1.at.duration_since(m0.at).as_secs_f64();
    Ok(RunResult::new(
        w,
        opts,
        Throughput {
            window_s: secs,
            produce_msgs: m1.produced_msgs - m0.produced_msgs,
            produce_msgs_per_s: rate(m1.produced_msgs - m0.produced_msgs, secs),
            produce_mib_per_s: rate(m1.produced_bytes - m0.produced_bytes, secs) / MIB,
            consume_msgs: m1.consumed_msgs - m0.consumed_msgs,
            consume_msgs_per_s: rate(m1.consumed_msgs - m0.consumed_msgs, secs),
            consume_mib_per_s: rate(m1.consumed_bytes - m0.consumed_bytes, secs) / MIB,
            harness_cpu_s: m1.cpu_s - m0.cpu_s,
            harness_cores_used: if secs > 0.0 {
                (m1.cpu_s - m0.cpu_s) / secs
            } else {
                0.0
            },
        },
        total,
        series,
    ))
}
