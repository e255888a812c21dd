//! CreatePartitions v0–v3: grow a topic's partition count.

use super::{respond, sb, Outcome};
use crate::shard::{MetaMsg, ShardContext};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: CreatePartitionsRequest = req.decode()?;
    let items = body
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.count))
        .collect();
    let validate_only = body.validate_only;
    let msg = |reply| MetaMsg::CreatePartitions {
        items,
        validate_only,
        reply,
    };
    let mut results = ctx.ask_meta(msg).await.unwrap_or_default().into_iter();
    let mut resp = CreatePartitionsResponse::default();
    for t in &body.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        if let Some(Err(e)) = results.next() {
            r.error_code = e.code;
            r.error_message = Some(sb(e.message));
        }
        resp.results.push(r);
    }
    respond(req, &resp)
}
