//! Produce v0–v11. Each partition's batches go to its home shard; the response waits for
//! every partition as its acks level asks (acks=0: no response at all).

use super::{respond, Outcome};
use crate::errors;
use crate::shard::ShardContext;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: ProduceRequest = req.decode()?;
    let transactional = body
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty());
    {
        let snap = ctx.snapshot();
        let missing: Vec<String> = body
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| !snap.topics.contains_key(n))
            .collect();
        super::auto_create(ctx, missing).await;
    }
    let mut work = Vec::new();
    for t in &body.topic_data {
        for p in &t.partition_data {
            let topic = t.name.0.to_string();
            let records = p.records.clone().unwrap_or_default();
            let (ctx, acks, index) = (ctx.clone(), body.acks, p.index);
            work.push(async move {
                if transactional {
                    return crate::shard::ProduceResult {
                        error: errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                        message: Some("transactions are not supported".into()),
                        base_offset: -1,
                        log_append_time_ms: -1,
                        log_start_offset: -1,
                    };
                }
                ctx.produce(topic, index, records, acks).await
            });
        }
    }
    let results = futures_util::future::join_all(work).await;
    if body.acks == 0 {
        return Ok(Outcome::NoResponse);
    }
    let mut results = results.into_iter();
    let mut resp = ProduceResponse::default();
    for t in &body.topic_data {
        let mut tr = TopicProduceResponse::default();
        tr.name = t.name.clone();
        for p in &t.partition_data {
            let r = results.next().expect("one result per partition");
            let mut pr = PartitionProduceResponse::default();
            pr.index = p.index;
            pr.error_code = r.error;
            pr.base_offset = r.base_offset;
            pr.log_append_time_ms = r.log_append_time_ms;
            pr.log_start_offset = r.log_start_offset;
            pr.error_message = r.message.map(super::sb);
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    respond(req, &resp)
}
