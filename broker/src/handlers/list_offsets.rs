//! ListOffsets v0–v9: latest (-1), earliest (-2), max timestamp (-3), or the first offset
//! at or after a timestamp.

use super::{respond, Outcome};
use crate::shard::ShardContext;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: ListOffsetsRequest = req.decode()?;
    let mut work = Vec::new();
    for t in &body.topics {
        for p in &t.partitions {
            let (ctx, name, idx, ts) = (
                ctx.clone(),
                t.name.0.to_string(),
                p.partition_index,
                p.timestamp,
            );
            work.push(async move { ctx.offsets(name, idx, ts).await });
        }
    }
    let mut results = futures_util::future::join_all(work).await.into_iter();
    let mut resp = ListOffsetsResponse::default();
    for t in &body.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let r = results.next().expect("one per partition");
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.error_code = r.error;
            // Fields exist only from some versions on; the codec refuses others.
            if req.api_version >= 1 {
                pr.timestamp = r.timestamp;
                pr.offset = r.offset;
            }
            if req.api_version >= 4 {
                pr.leader_epoch = r.leader_epoch;
            }
            if req.api_version == 0 {
                pr.old_style_offsets = if r.offset >= 0 {
                    vec![r.offset]
                } else {
                    Vec::new()
                };
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    respond(req, &resp)
}
