//! Metadata v0–v12: this node is the only broker, leader and sole in-sync replica of
//! every partition. Unknown topics are auto-created when allowed.

use super::{respond, sb, Outcome};
use crate::errors;
use crate::shard::ShardContext;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

pub async fn handle(ctx: &Rc<ShardContext>, req: &RawRequest) -> Result<Outcome, RequestError> {
    let body: MetadataRequest = req.decode()?;
    let node = ctx.config.server.node_id;
    // v0: an empty list means all topics; v1+: null means all.
    let requested: Option<Vec<(Option<String>, uuid::Uuid)>> = match &body.topics {
        None => None,
        Some(t) if t.is_empty() && req.api_version == 0 => None,
        Some(t) => Some(
            t.iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let allow_auto = req.api_version < 4 || body.allow_auto_topic_creation;
    if let (Some(list), true) = (&requested, allow_auto) {
        let snap = ctx.snapshot();
        let missing: Vec<String> = list
            .iter()
            .filter_map(|(n, _)| n.clone())
            .filter(|n| !snap.topics.contains_key(n))
            .collect();
        super::auto_create(ctx, missing).await;
    }
    let snap = ctx.snapshot();
    let (host, port) = ctx.config.advertised();
    let mut resp = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(node);
    broker.host = sb(host);
    broker.port = port;
    resp.brokers = vec![broker];
    resp.cluster_id = Some(sb(snap.cluster_id.clone()));
    resp.controller_id = BrokerId(node);
    let topic_entry = |name: &str, meta: Option<&crate::metadata::TopicMeta>| {
        let mut t = MetadataResponseTopic::default();
        t.name = Some(TopicName(sb(name.to_string())));
        t.topic_authorized_operations = i32::MIN;
        match meta {
            None => t.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
            Some(m) => {
                t.topic_id = m.uuid();
                t.is_internal = name.starts_with("__");
                t.partitions = (0..m.partitions)
                    .map(|p| {
                        let mut pm = MetadataResponsePartition::default();
                        pm.partition_index = p;
                        pm.leader_id = BrokerId(node);
                        pm.leader_epoch = 0;
                        pm.replica_nodes = vec![BrokerId(node)];
                        pm.isr_nodes = vec![BrokerId(node)];
                        pm
                    })
                    .collect();
            }
        }
        t
    };
    resp.topics = match requested {
        None => snap
            .topics
            .iter()
            .map(|(n, m)| topic_entry(n, Some(m)))
            .collect(),
        Some(list) => list
            .iter()
            .map(|(name, id)| match name {
                Some(n) => topic_entry(n, snap.topics.get(n)),
                None => match snap.topic_by_id(*id) {
                    Some((n, m)) => topic_entry(n, Some(m)),
                    None => {
                        let mut t = MetadataResponseTopic::default();
                        t.topic_id = *id;
                        t.error_code = errors::UNKNOWN_TOPIC_ID;
                        t
                    }
                },
            })
            .collect(),
    };
    resp.cluster_authorized_operations = i32::MIN;
    respond(req, &resp)
}
