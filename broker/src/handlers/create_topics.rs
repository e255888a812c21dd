//! CreateTopics v0–v7 through the metadata service; answered once every shard has the new
//! topic (so a produce right after the reply finds its partitions).

use super::{respond, sb, Outcome};
use crate::shard::{CreateTopicSpec, MetaMsg, ShardContext};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: CreateTopicsRequest = req.decode()?;
    let specs: Vec<CreateTopicSpec> = body
        .topics
        .iter()
        .map(|t| CreateTopicSpec {
            name: t.name.0.to_string(),
            partitions: if t.num_partitions == -1 {
                ctx.config.server.default_partitions
            } else {
                t.num_partitions
            },
            replication: if !t.assignments.is_empty() {
                t.assignments[0].broker_ids.len() as i16
            } else {
                t.replication_factor
            },
            configs: t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect(),
        })
        .collect();
    let partitions: Vec<i32> = specs.iter().map(|s| s.partitions).collect();
    let validate_only = body.validate_only;
    let msg = |reply| MetaMsg::CreateTopics {
        topics: specs,
        validate_only,
        reply,
    };
    let results = ctx.ask_meta(msg).await.unwrap_or_default();
    let snap = ctx.snapshot();
    let mut resp = CreateTopicsResponse::default();
    for (i, t) in body.topics.iter().enumerate() {
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        match results.get(i) {
            Some(Ok(())) => {
                r.num_partitions = partitions[i];
                r.replication_factor = 1;
                if let Some(m) = snap.topics.get(t.name.0.as_str()) {
                    r.topic_id = m.uuid();
                }
            }
            Some(Err(e)) => {
                r.error_code = e.code;
                r.error_message = Some(sb(e.message.clone()));
                r.num_partitions = -1;
                r.replication_factor = -1;
            }
            None => {
                r.error_code = crate::errors::KAFKA_STORAGE_ERROR;
                r.error_message = Some(sb("metadata service unavailable"));
            }
        }
        resp.topics.push(r);
    }
    respond(req, &resp)
}
