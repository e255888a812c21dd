//! One file per Kafka API. Each handler decodes its request, does its work through the
//! shard context (which routes partition work to home shards), and encodes its response.
//!
//! The table in [`SUPPORTED`] is the single source of what ApiVersions advertises and what
//! the dispatcher accepts: nothing unimplemented is advertised.

mod api_versions;
mod configs;
mod create_partitions;
mod create_topics;
mod delete_topics;
mod describe_cluster;
mod fetch;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;

use crate::shard::ShardContext;
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_protocol::request::{encode_response, RawRequest, RequestError};
use std::rc::Rc;

/// (api, min version, max version) that Sluice implements.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 0, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 9),
    (ApiKey::OffsetFetch, 0, 9),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 0),
    (ApiKey::ConsumerGroupDescribe, 0, 0),
];

pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, lo, hi)| {
            let schema = api.valid_versions();
            (lo.max(schema.min), hi.min(schema.max))
        })
}

/// What the connection does after a request.
pub enum Outcome {
    /// Send this frame.
    Respond(Bytes),
    /// acks=0 produce: send nothing.
    NoResponse,
}

pub fn respond<T: Encodable>(req: &RawRequest, body: &T) -> Result<Outcome, RequestError> {
    encode_response(req.api_key, req.api_version, req.correlation_id, body)
        .map(Outcome::Respond)
        .map_err(|e| RequestError::Malformed {
            api: req.api_key,
            version: req.api_version,
            reason: e.to_string(),
            correlation_id: req.correlation_id,
        })
}

pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Dispatches one request. An `Err` closes the connection (unknown or unsupported API
/// version, undecodable body), as Kafka does.
pub use groups::handle_local as handle_group_local;

pub async fn handle(ctx: &Rc<ShardContext>, req: RawRequest) -> Result<Outcome, RequestError> {
    if req.api_key == ApiKey::ApiVersions {
        return api_versions::handle(&req);
    }
    match supported_range(req.api_key) {
        Some((lo, hi)) if (lo..=hi).contains(&req.api_version) => {}
        range => {
            let (min, max) = range.unwrap_or((-1, -1));
            return Err(RequestError::UnsupportedVersion {
                api: req.api_key,
                version: req.api_version,
                min,
                max,
                correlation_id: req.correlation_id,
            });
        }
    }
    match req.api_key {
        ApiKey::Produce => produce::handle(ctx, &req).await,
        ApiKey::Fetch => fetch::handle(ctx, &req).await,
        ApiKey::ListOffsets => list_offsets::handle(ctx, &req).await,
        ApiKey::Metadata => metadata::handle(ctx, &req).await,
        ApiKey::CreateTopics => create_topics::handle(ctx, &req).await,
        ApiKey::DeleteTopics => delete_topics::handle(ctx, &req).await,
        ApiKey::InitProducerId => init_producer_id::handle(ctx, &req).await,
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch::handle(ctx, &req).await,
        ApiKey::DescribeConfigs => configs::describe(ctx, &req).await,
        ApiKey::AlterConfigs => configs::alter(ctx, &req).await,
        ApiKey::IncrementalAlterConfigs => configs::incremental_alter(ctx, &req).await,
        ApiKey::CreatePartitions => create_partitions::handle(ctx, &req).await,
        ApiKey::DescribeCluster => describe_cluster::handle(ctx, &req).await,
        ApiKey::FindCoordinator => groups::find_coordinator(ctx, &req).await,
        ApiKey::OffsetFetch => groups::offset_fetch(ctx, &req).await,
        ApiKey::DescribeGroups => groups::describe_groups(ctx, &req).await,
        ApiKey::ListGroups => groups::list_groups(ctx, &req).await,
        ApiKey::DeleteGroups => groups::delete_groups(ctx, &req).await,
        ApiKey::JoinGroup
        | ApiKey::SyncGroup
        | ApiKey::Heartbeat
        | ApiKey::LeaveGroup
        | ApiKey::OffsetCommit
        | ApiKey::OffsetDelete
        | ApiKey::ConsumerGroupHeartbeat
        | ApiKey::ConsumerGroupDescribe => {
            let group = groups::group_of(&req)?;
            groups::routed(ctx, req, &group).await
        }
        other => Err(RequestError::UnsupportedVersion {
            api: other,
            version: req.api_version,
            min: -1,
            max: -1,
            correlation_id: req.correlation_id,
        }),
    }
}

/// Auto-creates the topics in `names` that do not exist yet (Metadata/Produce), if enabled.
pub async fn auto_create(ctx: &Rc<ShardContext>, names: Vec<String>) {
    if names.is_empty() || !ctx.config.server.auto_create_topics {
        return;
    }
    let topics = names
        .into_iter()
        .filter(|n| crate::metadata::validate_topic_name(n).is_ok())
        .map(|name| crate::shard::CreateTopicSpec {
            name,
            partitions: ctx.config.server.default_partitions,
            replication: -1,
            configs: Default::default(),
        })
        .collect::<Vec<_>>();
    if topics.is_empty() {
        return;
    }
    let msg = |reply| crate::shard::MetaMsg::CreateTopics {
        topics,
        validate_only: false,
        reply,
    };
    let _ = ctx.ask_meta(msg).await;
}
