//! Fetch v4–v17, session-less (every reply has session id 0, so clients keep sending full
//! fetches). Long-polls up to max_wait_ms until min_bytes are there; honours max_bytes and
//! per-partition limits, always returning at least one whole batch so a large one can pass.
//! Topic ids (v13+) are resolved against the metadata snapshot.

use super::{respond, Outcome};
use crate::errors;
use crate::shard::{FetchResult, ShardContext};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Upper bound on a client's max_wait_ms.
const MAX_WAIT_MS_MAX: u64 = 30_000;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: FetchRequest = req.decode()?;
    let snap = ctx.snapshot();
    let by_id = req.api_version >= 13;
    // Resolve names: (name or None if unknown id, topic index, partition index).
    let mut parts: Vec<(Option<String>, i32, i64, usize)> = Vec::new();
    for t in &body.topics {
        let name = if by_id {
            snap.topic_by_id(t.topic_id).map(|(n, _)| n.clone())
        } else {
            Some(t.topic.0.to_string())
        };
        for p in &t.partitions {
            parts.push((
                name.clone(),
                p.partition,
                p.fetch_offset,
                p.partition_max_bytes.max(0) as usize,
            ));
        }
    }
    let deadline = Instant::now()
        + Duration::from_millis((body.max_wait_ms.max(0) as u64).min(MAX_WAIT_MS_MAX));
    let min_bytes = body.min_bytes.max(0) as usize;
    let max_bytes = if body.max_bytes <= 0 {
        usize::MAX
    } else {
        body.max_bytes as usize
    };
    let results = loop {
        let reads = parts.iter().map(|(name, p, off, pmax)| {
            let ctx = ctx.clone();
            let (name, p, off, pmax) = (name.clone(), *p, *off, (*pmax).min(max_bytes));
            async move {
                match name {
                    None => FetchResult {
                        error: errors::UNKNOWN_TOPIC_ID,
                        high_watermark: -1,
                        log_start_offset: -1,
                        ..Default::default()
                    },
                    Some(n) => ctx.fetch(n, p, off, pmax).await,
                }
            }
        });
        let mut results: Vec<FetchResult> = futures_util::future::join_all(reads).await;
        // Enforce the response-wide max_bytes in request order (at least the first batch).
        let mut total = 0usize;
        for r in results.iter_mut() {
            if total > 0 && total + r.records.len() > max_bytes {
                r.records = bytes::Bytes::new();
            }
            total += r.records.len();
        }
        let any_error = results.iter().any(|r| r.error != errors::NONE);
        let now = Instant::now();
        if total >= min_bytes.max(1)
            || any_error
            || now >= deadline
            || parts.is_empty()
            || min_bytes == 0
        {
            break results;
        }
        // Wait for data beyond what each partition has now (not beyond the fetch offset, or
        // a partition with a little data would wake us at once, again and again).
        let waits = parts
            .iter()
            .zip(&results)
            .filter_map(|((n, p, o, _), r)| n.clone().map(|n| (n, *p, (*o).max(r.high_watermark))))
            .collect();
        ctx.wait_for_data(waits, deadline - now).await;
    };
    let mut resp = FetchResponse::default();
    resp.session_id = 0;
    let mut results = results.into_iter();
    for t in &body.topics {
        let mut tr = FetchableTopicResponse::default();
        if by_id {
            tr.topic_id = t.topic_id;
        } else {
            tr.topic = TopicName(t.topic.0.clone());
        }
        for p in &t.partitions {
            let r = results.next().expect("one result per partition");
            let mut pd = PartitionData::default();
            pd.partition_index = p.partition;
            pd.error_code = r.error;
            pd.high_watermark = r.high_watermark;
            pd.last_stable_offset = r.high_watermark;
            pd.log_start_offset = r.log_start_offset;
            pd.aborted_transactions = if req.api_version >= 4 {
                Some(Vec::new())
            } else {
                None
            };
            pd.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
            pd.records = Some(r.records);
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }
    respond(req, &resp)
}
