//! The producer: per-partition batching (batch_size / linger_ms), pipelined Produce requests
//! (up to max_in_flight per connection), retries of retriable errors, and publish latency
//! from the intended send time.
//!
//! Lives on: one glommio executor. A sender task generates messages and writes requests; a
//! receiver task reads the answers in order (Kafka answers a connection's requests in the
//! order they were sent) and releases in-flight slots.

use crate::conn::{self, FrameReader, Half};
use crate::driver::{LocalStats, Shared};
use crate::kafka::{self, BatchWriter};
use crate::rate::Schedule;
use crate::stats::record_us;
use crate::workload::{KeyDistribution, TIMESTAMP_BYTES};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::sync::Semaphore;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use sluice_protocol::request::{decode_response, encode_request};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Messages (bytes) a producer may hold in unsent batches: Kafka's `buffer.memory`.
pub const PRODUCER_BUFFER_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Kafka's `max.request.size` default; a batch larger than it gets a request of its own.
pub const REQUEST_BYTES_MAX: usize = 1024 * 1024;
/// Attempts per batch after the first, for retriable errors.
pub const RETRIES_MAX: u32 = 10;
/// How long a stopping producer waits for its outstanding acknowledgements.
const STOP_WAIT_MS: u64 = 30_000;
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Clone)]
pub struct ProducerCfg {
    pub addr: String,
    pub topic: String,
    pub partitions: u32,
    /// Messages per second for this producer; None = as fast as the window allows.
    pub rate_msgs_per_s: Option<f64>,
    pub acks: i16,
    pub batch_bytes: usize,
    pub linger_us: u64,
    pub max_in_flight: u32,
    pub key_distribution: KeyDistribution,
    pub payload: Arc<Vec<u8>>,
    pub seed: u64,
}

/// One partition's open batch.
struct Acc {
    writer: BatchWriter,
    first_us: u64,
    intended_us: Vec<u64>,
    created_us: Vec<u64>,
}

/// A closed batch: sent, in flight, or waiting to be retried.
struct Batch {
    partition: i32,
    data: Bytes,
    intended_us: Vec<u64>,
    created_us: Vec<u64>,
    payload_bytes: u64,
    attempts: u32,
}

struct InFlight {
    correlation_id: i32,
    batches: Vec<Batch>,
}

/// State the sender and receiver tasks share (same executor, never across an await).
struct Local {
    pending: RefCell<VecDeque<InFlight>>,
    retry: RefCell<Vec<Batch>>,
    in_flight: Semaphore,
    failed: RefCell<Option<String>>,
    done: Cell<bool>,
}

pub async fn run(shared: Arc<Shared>, cfg: ProducerCfg, stats: Rc<LocalStats>) -> Result<()> {
    let (read_half, mut write_half) = conn::connect(&cfg.addr).await?;
    let local = Rc::new(Local {
        pending: RefCell::new(VecDeque::new()),
        retry: RefCell::new(Vec::new()),
        in_flight: Semaphore::new(cfg.max_in_flight as u64),
        failed: RefCell::new(None),
        done: Cell::new(false),
    });
    let receiver = (cfg.acks != 0).then(|| {
        glommio::spawn_local(receive(
            shared.clone(),
            cfg.clone(),
            local.clone(),
            stats.clone(),
            FrameReader::new(read_half),
        ))
    });
    let result = send(&shared, &cfg, &local, &mut write_half).await;
    local.done.set(true);
    drop(receiver); // cancels the receiver, which may be waiting for a frame that never comes
    let failed = local.failed.borrow_mut().take();
    // The receiver's reason (e.g. "the broker closed the connection") says more than the
    // sender's ("connection lost"), so it wins.
    match (result, failed) {
        (_, Some(reason)) => bail!("producer for {}: {reason}", cfg.topic),
        (Err(e), None) => Err(e),
        (Ok(()), None) => Ok(()),
    }
}

struct Generator {
    accs: Vec<Option<Acc>>,
    /// Partitions with an open batch, so that a 1,000-partition producer does not scan all.
    active: Vec<u32>,
    /// Closed batches not yet taken into a request.
    full: Vec<Batch>,
    buffered_bytes: usize,
    sticky: u32,
    counter: u64,
    rng: u64,
    value: Vec<u8>,
    key: [u8; 8],
}

impl Generator {
    fn partition_and_key(&mut self, partitions: u32, dist: KeyDistribution) -> (u32, bool) {
        match dist {
            KeyDistribution::None => (self.sticky, false),
            KeyDistribution::RoundRobin => {
                let k = self.counter;
                self.counter += 1;
                self.key = k.to_be_bytes();
                ((k % partitions as u64) as u32, true)
            }
            KeyDistribution::Random => {
                // xorshift64*: cheap, seeded per producer.
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                let k = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
                self.key = k.to_be_bytes();
                ((k % partitions as u64) as u32, true)
            }
        }
    }

    /// Appends one message; true if its partition's batch is now full.
    fn append(&mut self, cfg: &ProducerCfg, intended_us: u64, now_us: u64) -> bool {
        let (p, keyed) = self.partition_and_key(cfg.partitions, cfg.key_distribution);
        self.value[..TIMESTAMP_BYTES].copy_from_slice(&intended_us.to_be_bytes());
        let ts_ms = (intended_us / 1000) as i64;
        let slot = &mut self.accs[p as usize];
        if slot.is_none() {
            *slot = Some(Acc {
                writer: BatchWriter::new(ts_ms, cfg.batch_bytes + self.value.len() + 64),
                first_us: now_us,
                intended_us: Vec::new(),
                created_us: Vec::new(),
            });
            self.active.push(p);
        }
        let acc = slot.as_mut().expect("just filled");
        // A new batch counts its header too.
        let before = if acc.intended_us.is_empty() {
            0
        } else {
            acc.writer.size_bytes()
        };
        acc.writer
            .push(keyed.then_some(&self.key[..]), &self.value, ts_ms);
        acc.intended_us.push(intended_us);
        acc.created_us.push(now_us);
        self.buffered_bytes += acc.writer.size_bytes() - before;
        let full = acc.writer.size_bytes() >= cfg.batch_bytes;
        if full {
            // Close it now, as Kafka's accumulator does: the next message for this partition
            // starts a new batch, so no batch grows past batch_size while waiting for a slot.
            let batch = self.close(p);
            self.full.push(batch);
            if cfg.key_distribution == KeyDistribution::None {
                self.sticky = (self.sticky + 1) % cfg.partitions;
            }
        }
        full
    }

    /// Turns partition `p`'s open batch into a closed one (still counted as buffered).
    fn close(&mut self, p: u32) -> Batch {
        let acc = self.accs[p as usize]
            .take()
            .expect("partition has an open batch");
        if let Some(i) = self.active.iter().position(|a| *a == p) {
            self.active.swap_remove(i);
        }
        let payload_bytes = (acc.intended_us.len() * self.value.len()) as u64;
        Batch {
            partition: p as i32,
            data: Bytes::from(acc.writer.finish()),
            intended_us: acc.intended_us,
            created_us: acc.created_us,
            payload_bytes,
            attempts: 0,
        }
    }

    /// Takes the closed (full) batches and the open ones that lingered long enough, or all
    /// of them when `all`.
    fn take_ready(&mut self, cfg: &ProducerCfg, now_us: u64, all: bool, out: &mut Vec<Batch>) {
        let mut i = 0;
        while i < self.active.len() {
            let p = self.active[i];
            let acc = self.accs[p as usize].as_ref().expect("active has a batch");
            if all || now_us >= acc.first_us + cfg.linger_us {
                let batch = self.close(p); // swap_remove at i: do not advance
                self.full.push(batch);
            } else {
                i += 1;
            }
        }
        for b in self.full.drain(..) {
            self.buffered_bytes -= b.data.len();
            out.push(b);
        }
    }

    fn earliest_linger_deadline_us(&self, linger_us: u64) -> Option<u64> {
        self.active
            .iter()
            .filter_map(|p| self.accs[*p as usize].as_ref())
            .map(|a| a.first_us + linger_us)
            .min()
    }
}

async fn send(shared: &Shared, cfg: &ProducerCfg, local: &Local, out: &mut Half) -> Result<()> {
    let mut schedule = cfg
        .rate_msgs_per_s
        .map(|r| Schedule::new(shared.clock.now_us(), r));
    let mut gen = Generator {
        accs: (0..cfg.partitions).map(|_| None).collect(),
        active: Vec::new(),
        full: Vec::new(),
        buffered_bytes: 0,
        sticky: (cfg.seed % cfg.partitions as u64) as u32,
        counter: 0,
        rng: cfg.seed | 1,
        value: cfg.payload.as_ref().clone(),
        key: [0; 8],
    };
    let mut correlation_id = 0i32;
    let mut ready: Vec<Batch> = Vec::new();
    let mut have_permit = false;
    loop {
        if shared.abort.load(Ordering::Relaxed) || local.failed.borrow().is_some() {
            return Ok(());
        }
        let stopping = shared.stop_producers.load(Ordering::Relaxed);
        let mut now = shared.clock.now_us();
        if !stopping {
            match schedule.as_mut() {
                Some(s) => {
                    let due = s.due(now);
                    let mut n = 0u64;
                    while n < due && gen.buffered_bytes < PRODUCER_BUFFER_BYTES_MAX {
                        // Left undone when the buffer is full: those stay due, and their
                        // intended times keep counting.
                        let intended = s.issue();
                        gen.append(cfg, intended, now);
                        n += 1;
                    }
                    shared.sent_msgs.fetch_add(n, Ordering::Relaxed);
                }
                None => {
                    // As fast as the window allows: fill until a batch is full and a slot is
                    // free, or the buffer is full.
                    let mut n = 0u64;
                    while gen.buffered_bytes < PRODUCER_BUFFER_BYTES_MAX {
                        let full = gen.append(cfg, now, now);
                        n += 1;
                        if full && (have_permit || local.in_flight.try_acquire(1).unwrap_or(false))
                        {
                            have_permit = true;
                            break;
                        }
                        if n & 63 == 0 {
                            now = shared.clock.now_us();
                        }
                    }
                    shared.sent_msgs.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        ready.append(&mut local.retry.borrow_mut());
        gen.take_ready(cfg, now, stopping, &mut ready);
        if ready.is_empty() {
            if stopping {
                break;
            }
            let next = [
                schedule.as_ref().map(|s| s.next_due_us()),
                gen.earliest_linger_deadline_us(cfg.linger_us),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + 1000);
            let wait_us = next
                .saturating_sub(shared.clock.now_us())
                .clamp(50, 100_000);
            glommio::timer::sleep(Duration::from_micros(wait_us)).await;
            continue;
        }
        while !ready.is_empty() {
            if !have_permit {
                local
                    .in_flight
                    .acquire(1)
                    .await
                    .map_err(|_| anyhow::anyhow!("connection lost"))?;
            }
            have_permit = false;
            correlation_id = correlation_id.wrapping_add(1);
            let batches = take_request(&mut ready);
            let frame = encode_produce(cfg, correlation_id, &batches)?;
            if cfg.acks != 0 {
                local.pending.borrow_mut().push_back(InFlight {
                    correlation_id,
                    batches,
                });
                out.write_all(&frame)
                    .await
                    .context("write to the broker failed")?;
            } else {
                out.write_all(&frame)
                    .await
                    .context("write to the broker failed")?;
                // No answer will come: count what left and free the slot now.
                let n: u64 = batches.iter().map(|b| b.intended_us.len() as u64).sum();
                let bytes: u64 = batches.iter().map(|b| b.payload_bytes).sum();
                shared.produced_msgs.fetch_add(n, Ordering::Relaxed);
                shared.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
                local.in_flight.signal(1);
            }
        }
    }
    if have_permit {
        local.in_flight.signal(1);
    }
    // Stopping: wait for outstanding answers (and retries they cause), bounded.
    let deadline = shared.clock.now_us() + STOP_WAIT_MS * 1000;
    loop {
        let retries: Vec<Batch> = local.retry.borrow_mut().drain(..).collect();
        if !retries.is_empty() {
            let mut retries = retries;
            while !retries.is_empty() {
                local
                    .in_flight
                    .acquire(1)
                    .await
                    .map_err(|_| anyhow::anyhow!("connection lost"))?;
                correlation_id = correlation_id.wrapping_add(1);
                let batches = take_request(&mut retries);
                let frame = encode_produce(cfg, correlation_id, &batches)?;
                local.pending.borrow_mut().push_back(InFlight {
                    correlation_id,
                    batches,
                });
                out.write_all(&frame)
                    .await
                    .context("write to the broker failed")?;
            }
        }
        if local.pending.borrow().is_empty() && local.retry.borrow().is_empty() {
            return Ok(());
        }
        if local.failed.borrow().is_some() || shared.abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        if shared.clock.now_us() > deadline {
            bail!(
                "producer for {}: acknowledgements still outstanding {} s after stop",
                cfg.topic,
                STOP_WAIT_MS / 1000
            );
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// Takes batches for one request: at most one per partition, up to REQUEST_BYTES_MAX
/// (always at least one batch).
fn take_request(ready: &mut Vec<Batch>) -> Vec<Batch> {
    let mut taken: Vec<Batch> = Vec::new();
    let mut bytes = 0usize;
    let mut rest = Vec::new();
    for b in ready.drain(..) {
        let dup = taken.iter().any(|t| t.partition == b.partition);
        if !taken.is_empty() && (dup || bytes + b.data.len() > REQUEST_BYTES_MAX) {
            rest.push(b);
        } else {
            bytes += b.data.len();
            taken.push(b);
        }
    }
    *ready = rest;
    taken
}

fn encode_produce(cfg: &ProducerCfg, correlation_id: i32, batches: &[Batch]) -> Result<Bytes> {
    let mut t = TopicProduceData::default();
    t.name = TopicName(kafka::sb(&cfg.topic));
    for b in batches {
        let mut p = PartitionProduceData::default();
        p.index = b.partition;
        p.records = Some(b.data.clone());
        t.partition_data.push(p);
    }
    let mut req = ProduceRequest::default();
    req.acks = cfg.acks;
    req.timeout_ms = PRODUCE_TIMEOUT_MS;
    req.topic_data.push(t);
    Ok(encode_request(
        ApiKey::Produce,
        kafka::PRODUCE_VERSION,
        correlation_id,
        kafka::CLIENT_ID,
        &req,
    )?)
}

async fn receive(
    shared: Arc<Shared>,
    cfg: ProducerCfg,
    local: Rc<Local>,
    stats: Rc<LocalStats>,
    mut reader: FrameReader,
) {
    let mut codes = vec![0i16; cfg.partitions as usize];
    loop {
        let frame = match reader.next().await {
            Ok(f) => f,
            Err(e) => {
                if !(local.done.get() && local.pending.borrow().is_empty()) {
                    *local.failed.borrow_mut() = Some(format!("{e:#}"));
                }
                local.in_flight.close();
                return;
            }
        };
        let ack_us = shared.clock.now_us();
        let Some(inflight) = local.pending.borrow_mut().pop_front() else {
            *local.failed.borrow_mut() = Some("an answer to no request".into());
            local.in_flight.close();
            return;
        };
        let resp =
            decode_response::<ProduceResponse>(ApiKey::Produce, kafka::PRODUCE_VERSION, frame);
        let resp = match resp {
            Ok((corr, r)) if corr == inflight.correlation_id => r,
            Ok((corr, _)) => {
                *local.failed.borrow_mut() = Some(format!(
                    "answer with correlation id {corr}, expected {}",
                    inflight.correlation_id
                ));
                local.in_flight.close();
                return;
            }
            Err(e) => {
                *local.failed.borrow_mut() = Some(format!("bad Produce answer: {e}"));
                local.in_flight.close();
                return;
            }
        };
        // Partitions missing from the answer count as errors (code -1).
        for c in codes.iter_mut() {
            *c = -1;
        }
        for t in &resp.responses {
            for p in &t.partition_responses {
                if let Some(c) = codes.get_mut(p.index as usize) {
                    *c = p.error_code;
                }
            }
        }
        let (mut ok_msgs, mut ok_bytes) = (0u64, 0u64);
        {
            let mut h = stats.hists.borrow_mut();
            for mut b in inflight.batches {
                let code = codes[b.partition as usize];
                if code == 0 {
                    for (i, c) in b.intended_us.iter().zip(&b.created_us) {
                        record_us(&mut h.publish, ack_us.saturating_sub(*i));
                        record_us(&mut h.publish_uncorrected, ack_us.saturating_sub(*c));
                    }
                    ok_msgs += b.intended_us.len() as u64;
                    ok_bytes += b.payload_bytes;
                } else if kafka::is_retriable(code) && b.attempts < RETRIES_MAX {
                    b.attempts += 1;
                    shared.retries.fetch_add(1, Ordering::Relaxed);
                    local.retry.borrow_mut().push(b);
                } else {
                    shared
                        .produce_errors
                        .fetch_add(b.intended_us.len() as u64, Ordering::Relaxed);
                    shared.note_error_code(code);
                }
            }
        }
        shared.produced_msgs.fetch_add(ok_msgs, Ordering::Relaxed);
        shared.produced_bytes.fetch_add(ok_bytes, Ordering::Relaxed);
        local.in_flight.signal(1);
    }
}
