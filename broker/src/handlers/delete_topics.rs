//! DeleteTopics v0–v6 (by name, or by id from v6).

use super::{respond, sb, Outcome};
use crate::errors;
use crate::shard::{MetaMsg, ShardContext};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: DeleteTopicsRequest = req.decode()?;
    let snap = ctx.snapshot();
    // (name if resolved, id as asked)
    let mut asked: Vec<(Option<String>, uuid::Uuid)> = body
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    for t in &body.topics {
        match &t.name {
            Some(n) => asked.push((Some(n.0.to_string()), uuid::Uuid::nil())),
            None => asked.push((
                snap.topic_by_id(t.topic_id).map(|(n, _)| n.clone()),
                t.topic_id,
            )),
        }
    }
    let names: Vec<String> = asked.iter().filter_map(|(n, _)| n.clone()).collect();
    let msg = |reply| MetaMsg::DeleteTopics { names, reply };
    let mut results = ctx.ask_meta(msg).await.unwrap_or_default().into_iter();
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in asked {
        let mut r = DeletableTopicResult::default();
        r.topic_id = id;
        match name {
            None => r.error_code = errors::UNKNOWN_TOPIC_ID,
            Some(n) => {
                if id.is_nil() {
                    r.topic_id = snap.topics.get(&n).map(|m| m.uuid()).unwrap_or_default();
                }
                r.name = Some(TopicName(sb(n)));
                if let Some(Err(e)) = results.next() {
                    r.error_code = e.code;
                    r.error_message = Some(sb(e.message));
                }
            }
        }
        resp.responses.push(r);
    }
    respond(req, &resp)
}
