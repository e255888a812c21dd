//! OffsetForLeaderEpoch v0–v4: consumers validate their position after a leader change.
//! A single node has had one leader epoch (0) per partition: the end offset of epoch 0 is
//! the log end; a later epoch than ours is not known yet.

use super::{respond, Outcome};
use crate::errors;
use crate::shard::ShardContext;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: OffsetForLeaderEpochRequest = req.decode()?;
    let mut work = Vec::new();
    for t in &body.topics {
        for p in &t.partitions {
            let (ctx, name, idx) = (ctx.clone(), t.topic.0.to_string(), p.partition);
            work.push(async move { ctx.offsets(name, idx, -1).await });
        }
    }
    let mut results = futures_util::future::join_all(work).await.into_iter();
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in &body.topics {
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in &t.partitions {
            let r = results.next().expect("one per partition");
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            if r.error != errors::NONE {
                e.error_code = r.error;
                e.leader_epoch = -1;
                e.end_offset = -1;
            } else if p.current_leader_epoch > r.leader_epoch {
                e.error_code = errors::UNKNOWN_LEADER_EPOCH;
                e.leader_epoch = -1;
                e.end_offset = -1;
            } else if p.leader_epoch > r.leader_epoch {
                e.leader_epoch = -1;
                e.end_offset = -1;
            } else {
                e.leader_epoch = r.leader_epoch;
                e.end_offset = r.log_end_offset;
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    respond(req, &resp)
}
