//! The consumer: Fetch long-polls over an assigned set of partitions (no consumer group),
//! per-partition offsets, end-to-end latency from the timestamp each message carries.
//!
//! Lives on: one glommio executor; one Fetch in flight per consumer, as Kafka's consumer
//! keeps one per broker.

use crate::conn::{self, FrameReader};
use crate::driver::{LocalStats, Shared};
use crate::kafka;
use crate::stats::record_us;
use crate::workload::TIMESTAMP_BYTES;
use anyhow::{bail, Context, Result};
use futures_lite::AsyncWriteExt;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use sluice_protocol::batch::{iter_batches, records};
use sluice_protocol::request::{decode_response, encode_request};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Bytes one Fetch answer may carry, and per partition (Kafka's consumer defaults).
pub const FETCH_BYTES_MAX: i32 = 50 * 1024 * 1024;
pub const FETCH_PARTITION_BYTES_MAX: i32 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ConsumerCfg {
    pub addr: String,
    pub topic: String,
    /// (partition, first offset to read)
    pub assignment: Vec<(i32, i64)>,
    pub subscription: usize,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
}

pub async fn run(shared: Arc<Shared>, cfg: ConsumerCfg, stats: Rc<LocalStats>) -> Result<()> {
    let (read_half, mut out) = conn::connect(&cfg.addr).await?;
    let mut reader = FrameReader::new(read_half);
    while !shared.consumers_go.load(Ordering::Relaxed) {
        if shared.stop_consumers.load(Ordering::Relaxed) || shared.abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let mut offsets = cfg.assignment.clone();
    let mut slot_of = vec![
        usize::MAX;
        offsets
            .iter()
            .map(|(p, _)| *p as usize + 1)
            .max()
            .unwrap_or(0)
    ];
    for (i, (p, _)) in offsets.iter().enumerate() {
        slot_of[*p as usize] = i;
    }
    let mut correlation_id = 0i32;
    let sub = &shared.consumed_by_subscription[cfg.subscription];
    while !shared.stop_consumers.load(Ordering::Relaxed) && !shared.abort.load(Ordering::Relaxed) {
        correlation_id = correlation_id.wrapping_add(1);
        let frame = encode_fetch(&cfg, &offsets, correlation_id)?;
        out.write_all(&frame)
            .await
            .context("write to the broker failed")?;
        let answer = reader
            .next()
            .await
            .with_context(|| format!("consumer of {}", cfg.topic))?;
        let now_us = shared.clock.now_us();
        let (corr, resp) =
            decode_response::<FetchResponse>(ApiKey::Fetch, kafka::FETCH_VERSION, answer)
                .with_context(|| format!("consumer of {}: bad Fetch answer", cfg.topic))?;
        if corr != correlation_id {
            bail!(
                "consumer of {}: answer with correlation id {corr}, expected {correlation_id}",
                cfg.topic
            );
        }
        if resp.error_code != 0 {
            shared.consume_errors.fetch_add(1, Ordering::Relaxed);
            shared.note_error_code(resp.error_code);
            glommio::timer::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let (mut msgs, mut bytes) = (0u64, 0u64);
        {
            let mut h = stats.hists.borrow_mut();
            for t in &resp.responses {
                for p in &t.partitions {
                    let Some(&slot) = slot_of.get(p.partition_index as usize) else {
                        continue;
                    };
                    if slot == usize::MAX {
                        continue;
                    }
                    if p.error_code != 0 {
                        shared.consume_errors.fetch_add(1, Ordering::Relaxed);
                        shared.note_error_code(p.error_code);
                        continue;
                    }
                    let Some(data) = &p.records else { continue };
                    let offset = &mut offsets[slot].1;
                    for batch in iter_batches(data) {
                        // An incomplete last batch (cut by max bytes) ends the walk.
                        let Ok(batch) = batch else { break };
                        if batch.last_offset().0 < *offset {
                            continue;
                        }
                        let base = batch.base_offset().0;
                        let recs = records(&batch).with_context(|| {
                            format!(
                                "{}-{}: unreadable batch at offset {base}",
                                cfg.topic, p.partition_index
                            )
                        })?;
                        for r in recs {
                            if base + r.offset_delta < *offset {
                                continue;
                            }
                            let value = r.value.unwrap_or_default();
                            if let Some(ts) = value.get(..TIMESTAMP_BYTES) {
                                let sent_us = u64::from_be_bytes(ts.try_into().expect("8 bytes"));
                                record_us(&mut h.e2e, now_us.saturating_sub(sent_us));
                            }
                            msgs += 1;
                            bytes += value.len() as u64;
                        }
                        *offset = batch.last_offset().0 + 1;
                    }
                }
            }
        }
        shared.consumed_msgs.fetch_add(msgs, Ordering::Relaxed);
        shared.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
        sub.fetch_add(msgs, Ordering::Relaxed);
    }
    Ok(())
}

fn encode_fetch(
    cfg: &ConsumerCfg,
    offsets: &[(i32, i64)],
    correlation_id: i32,
) -> Result<bytes::Bytes> {
    let mut t = FetchTopic::default();
    t.topic = TopicName(kafka::sb(&cfg.topic));
    for (p, o) in offsets {
        let mut fp = FetchPartition::default();
        fp.partition = *p;
        fp.fetch_offset = *o;
        fp.partition_max_bytes = FETCH_PARTITION_BYTES_MAX;
        fp.current_leader_epoch = -1;
        fp.log_start_offset = -1;
        t.partitions.push(fp);
    }
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = cfg.max_wait_ms;
    req.min_bytes = cfg.min_bytes;
    req.max_bytes = FETCH_BYTES_MAX;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics.push(t);
    Ok(encode_request(
        ApiKey::Fetch,
        kafka::FETCH_VERSION,
        correlation_id,
        kafka::CLIENT_ID,
        &req,
    )?)
}
