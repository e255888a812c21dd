//! Consumer-group APIs (classic protocol): FindCoordinator v0–6, JoinGroup v0–9,
//! SyncGroup v0–5, Heartbeat v0–4, LeaveGroup v0–5, OffsetCommit v0–9, OffsetFetch v0–9,
//! DescribeGroups v0–5, ListGroups v0–5, DeleteGroups v0–2, OffsetDelete v0.
//!
//! Single-group requests run on the group's home shard (the request is forwarded there as
//! is); multi-group requests fan out per group and are assembled here.

use super::{respond, sb, Outcome};
use crate::errors;
use crate::group::coordinator::{Coordinator, JoinArgs};
use crate::group::records::OffsetValue;
use crate::shard::ShardContext;
use kafka_protocol::messages::*;
use sluice_protocol::request::{RawRequest, RequestError};
use std::rc::Rc;

/// Runs a single-group request where its group lives.
pub async fn routed(
    ctx: &Rc<ShardContext>,
    req: RawRequest,
    group: &str,
) -> Result<Outcome, RequestError> {
    let home = ctx.group_shard(group);
    if home == ctx.id {
        return handle_local(ctx, req).await;
    }
    ctx.forward_group_request(home, req).await
}

/// The group id of a single-group request, to route it.
pub fn group_of(req: &RawRequest) -> Result<String, RequestError> {
    Ok(match req.api_key {
        ApiKey::JoinGroup => req.decode::<JoinGroupRequest>()?.group_id.0.to_string(),
        ApiKey::SyncGroup => req.decode::<SyncGroupRequest>()?.group_id.0.to_string(),
        ApiKey::Heartbeat => req.decode::<HeartbeatRequest>()?.group_id.0.to_string(),
        ApiKey::LeaveGroup => req.decode::<LeaveGroupRequest>()?.group_id.0.to_string(),
        ApiKey::OffsetCommit => req.decode::<OffsetCommitRequest>()?.group_id.0.to_string(),
        ApiKey::OffsetDelete => req.decode::<OffsetDeleteRequest>()?.group_id.0.to_string(),
        ApiKey::ConsumerGroupHeartbeat => req
            .decode::<ConsumerGroupHeartbeatRequest>()?
            .group_id
            .0
            .to_string(),
        // Routed by its first group; each group is described where it lives when asked alone.
        ApiKey::ConsumerGroupDescribe => req
            .decode::<ConsumerGroupDescribeRequest>()?
            .group_ids
            .first()
            .map(|g| g.0.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    })
}

/// Executes a single-group request on the group's home shard.
pub async fn handle_local(
    ctx: &Rc<ShardContext>,
    req: RawRequest,
) -> Result<Outcome, RequestError> {
    let c: &Coordinator = &ctx.groups;
    match req.api_key {
        ApiKey::JoinGroup => {
            let b: JoinGroupRequest = req.decode()?;
            let args = JoinArgs {
                group: b.group_id.0.to_string(),
                member_id: b.member_id.to_string(),
                instance_id: b.group_instance_id.as_ref().map(|s| s.to_string()),
                client_id: req.client_id.clone().unwrap_or_default(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: b.session_timeout_ms,
                rebalance_timeout_ms: if req.api_version >= 1 {
                    b.rebalance_timeout_ms
                } else {
                    b.session_timeout_ms
                },
                protocol_type: b.protocol_type.to_string(),
                protocols: b
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                require_known_member_id: req.api_version >= 4,
            };
            let group = args.group.clone();
            let result = match c.join(args) {
                Ok(rx) => rx.await.unwrap_or_default(),
                Err(r) => r,
            };
            if result.error == errors::NONE && result.member_id == result.leader {
                ctx.persist_group_metadata(&group).await;
            }
            let mut resp = JoinGroupResponse::default();
            resp.error_code = result.error;
            resp.generation_id = result.generation;
            if req.api_version >= 7 {
                resp.protocol_type = result.protocol_type.map(sb);
            }
            resp.protocol_name = Some(sb(result.protocol.unwrap_or_default()));
            if req.api_version >= 9 {
                resp.skip_assignment = result.skip_assignment;
            }
            resp.leader = sb(result.leader);
            resp.member_id = sb(result.member_id);
            resp.members = result
                .members
                .into_iter()
                .map(|(id, iid, meta)| {
                    let mut m = join_group_response::JoinGroupResponseMember::default();
                    m.member_id = sb(id);
                    if req.api_version >= 5 {
                        m.group_instance_id = iid.map(sb);
                    }
                    m.metadata = meta;
                    m
                })
                .collect();
            respond(&req, &resp)
        }
        ApiKey::SyncGroup => {
            let b: SyncGroupRequest = req.decode()?;
            let assignments = b
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect();
            let result = match c.sync(&b.group_id.0, b.generation_id, &b.member_id, assignments) {
                Ok(rx) => rx.await.unwrap_or_default(),
                Err(r) => r,
            };
            let mut resp = SyncGroupResponse::default();
            resp.error_code = result.error;
            if req.api_version >= 5 {
                resp.protocol_type = result.protocol_type.map(sb);
                resp.protocol_name = result.protocol.map(sb);
            }
            resp.assignment = result.assignment;
            respond(&req, &resp)
        }
        ApiKey::Heartbeat => {
            let b: HeartbeatRequest = req.decode()?;
            let mut resp = HeartbeatResponse::default();
            resp.error_code = c.heartbeat(&b.group_id.0, b.generation_id, &b.member_id);
            respond(&req, &resp)
        }
        ApiKey::LeaveGroup => {
            let b: LeaveGroupRequest = req.decode()?;
            let members: Vec<(String, Option<String>)> = if req.api_version >= 3 {
                b.members
                    .iter()
                    .map(|m| {
                        (
                            m.member_id.to_string(),
                            m.group_instance_id.as_ref().map(|s| s.to_string()),
                        )
                    })
                    .collect()
            } else {
                vec![(b.member_id.to_string(), None)]
            };
            let codes = c.leave(&b.group_id.0, &members);
            let mut resp = LeaveGroupResponse::default();
            if req.api_version >= 3 {
                resp.members = members
                    .iter()
                    .zip(&codes)
                    .map(|((mid, iid), code)| {
                        let mut m = leave_group_response::MemberResponse::default();
                        m.member_id = sb(mid.clone());
                        m.group_instance_id = iid.clone().map(sb);
                        m.error_code = *code;
                        m
                    })
                    .collect();
            } else {
                resp.error_code = codes[0];
            }
            respond(&req, &resp)
        }
        ApiKey::OffsetCommit => {
            let b: OffsetCommitRequest = req.decode()?;
            let group = b.group_id.0.to_string();
            let code = c.check_commit(&group, b.generation_id_or_member_epoch, &b.member_id);
            let now = ctx.clock.now_ms();
            let mut offsets = Vec::new();
            for t in &b.topics {
                for p in &t.partitions {
                    let v = OffsetValue {
                        offset: p.committed_offset,
                        leader_epoch: if req.api_version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|s| s.to_string())
                            .unwrap_or_default(),
                        commit_timestamp_ms: now,
                    };
                    offsets.push((t.name.0.to_string(), p.partition_index, v));
                }
            }
            let code = if code == errors::NONE {
                let records = Coordinator::commit_records(&group, &offsets);
                ctx.append_group_records(&group, records).await
            } else {
                code
            };
            let mut resp = OffsetCommitResponse::default();
            for t in &b.topics {
                let mut tr = offset_commit_response::OffsetCommitResponseTopic::default();
                tr.name = t.name.clone();
                for p in &t.partitions {
                    let mut pr = offset_commit_response::OffsetCommitResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    pr.error_code = code;
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
            respond(&req, &resp)
        }
        ApiKey::OffsetDelete => {
            let b: OffsetDeleteRequest = req.decode()?;
            let group = b.group_id.0.to_string();
            let parts: Vec<(String, i32)> = b
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.name.0.to_string(), p.partition_index))
                })
                .collect();
            let mut resp = OffsetDeleteResponse::default();
            match c.delete_offsets(&group, &parts) {
                Err(code) => resp.error_code = code,
                Ok(records) => {
                    if !records.is_empty() {
                        resp.error_code = ctx.append_group_records(&group, records).await;
                    }
                }
            }
            for t in &b.topics {
                let mut tr = offset_delete_response::OffsetDeleteResponseTopic::default();
                tr.name = t.name.clone();
                for p in &t.partitions {
                    let mut pr = offset_delete_response::OffsetDeleteResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
            respond(&req, &resp)
        }
        ApiKey::ConsumerGroupHeartbeat => consumer_group_heartbeat(ctx, &req),
        ApiKey::ConsumerGroupDescribe => consumer_group_describe(ctx, &req),
        other => Err(RequestError::UnsupportedVersion {
            api: other,
            version: req.api_version,
            min: -1,
            max: -1,
            correlation_id: req.correlation_id,
        }),
    }
}

pub async fn find_coordinator(
    ctx: &Rc<ShardContext>,
    req: &RawRequest,
) -> Result<Outcome, RequestError> {
    let b: FindCoordinatorRequest = req.decode()?;
    let node = ctx.config.server.node_id;
    let (host, port) = ctx.config.advertised();
    let mut resp = FindCoordinatorResponse::default();
    if req.api_version >= 4 {
        resp.coordinators = b
            .coordinator_keys
            .iter()
            .map(|k| {
                let mut c = find_coordinator_response::Coordinator::default();
                c.key = k.clone();
                c.node_id = BrokerId(node);
                c.host = sb(host.clone());
                c.port = port;
                if b.key_type != 0 {
                    c.error_code = errors::COORDINATOR_NOT_AVAILABLE;
                    c.node_id = BrokerId(-1);
                    c.host = sb("");
                    c.port = -1;
                    c.error_message = Some(sb("transactions are not supported"));
                }
                c
            })
            .collect();
    } else if b.key_type != 0 {
        resp.error_code = errors::COORDINATOR_NOT_AVAILABLE;
        resp.node_id = BrokerId(-1);
        resp.host = sb("");
        resp.port = -1;
    } else {
        resp.node_id = BrokerId(node);
        resp.host = sb(host);
        resp.port = port;
    }
    respond(req, &resp)
}

pub async fn offset_fetch(
    ctx: &Rc<ShardContext>,
    req: &RawRequest,
) -> Result<Outcome, RequestError> {
    let b: OffsetFetchRequest = req.decode()?;
    let mut resp = OffsetFetchResponse::default();
    if req.api_version >= 8 {
        for g in &b.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let offsets = ctx.fetch_offsets(g.group_id.0.to_string(), topics).await;
            let mut gr = offset_fetch_response::OffsetFetchResponseGroup::default();
            gr.group_id = g.group_id.clone();
            let mut by_topic: Vec<offset_fetch_response::OffsetFetchResponseTopics> = Vec::new();
            for (t, p, v) in offsets {
                if by_topic.last().is_none_or(|x| x.name.0.as_str() != t) {
                    let mut tr = offset_fetch_response::OffsetFetchResponseTopics::default();
                    tr.name = TopicName(sb(t.clone()));
                    by_topic.push(tr);
                }
                let mut pr = offset_fetch_response::OffsetFetchResponsePartitions::default();
                pr.partition_index = p;
                pr.committed_offset = v.offset;
                pr.committed_leader_epoch = v.leader_epoch;
                pr.metadata = Some(sb(v.metadata));
                by_topic.last_mut().expect("pushed").partitions.push(pr);
            }
            gr.topics = by_topic;
            resp.groups.push(gr);
        }
    } else {
        let topics = b.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let offsets = ctx.fetch_offsets(b.group_id.0.to_string(), topics).await;
        for (t, p, v) in offsets {
            if resp.topics.last().is_none_or(|x| x.name.0.as_str() != t) {
                let mut tr = offset_fetch_response::OffsetFetchResponseTopic::default();
                tr.name = TopicName(sb(t.clone()));
                resp.topics.push(tr);
            }
            let mut pr = offset_fetch_response::OffsetFetchResponsePartition::default();
            pr.partition_index = p;
            pr.committed_offset = v.offset;
            if req.api_version >= 5 {
                pr.committed_leader_epoch = v.leader_epoch;
            }
            pr.metadata = Some(sb(v.metadata));
            resp.topics.last_mut().expect("pushed").partitions.push(pr);
        }
    }
    respond(req, &resp)
}

pub async fn describe_groups(
    ctx: &Rc<ShardContext>,
    req: &RawRequest,
) -> Result<Outcome, RequestError> {
    let b: DescribeGroupsRequest = req.decode()?;
    let mut resp = DescribeGroupsResponse::default();
    for g in &b.groups {
        let d = ctx.describe_group(g.0.to_string()).await;
        let mut out = describe_groups_response::DescribedGroup::default();
        out.error_code = d.error;
        out.group_id = g.clone();
        out.group_state = sb(d.state);
        out.protocol_type = sb(d.protocol_type);
        out.protocol_data = sb(d.protocol);
        out.members = d
            .members
            .into_iter()
            .map(|m| {
                let mut o = describe_groups_response::DescribedGroupMember::default();
                o.member_id = sb(m.member_id);
                if req.api_version >= 4 {
                    o.group_instance_id = m.instance_id.map(sb);
                }
                o.client_id = sb(m.client_id);
                o.client_host = sb(m.client_host);
                o.member_metadata = m.metadata;
                o.member_assignment = m.assignment;
                o
            })
            .collect();
        resp.groups.push(out);
    }
    respond(req, &resp)
}

pub async fn list_groups(
    ctx: &Rc<ShardContext>,
    req: &RawRequest,
) -> Result<Outcome, RequestError> {
    let b: ListGroupsRequest = req.decode()?;
    let mut resp = ListGroupsResponse::default();
    for (name, ptype, state) in ctx.list_groups().await {
        if !b.states_filter.is_empty()
            && !b
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
        {
            continue;
        }
        let mut g = list_groups_response::ListedGroup::default();
        g.group_id = GroupId(sb(name));
        g.protocol_type = sb(ptype);
        if req.api_version >= 4 {
            g.group_state = sb(state);
        }
        resp.groups.push(g);
    }
    respond(req, &resp)
}

pub async fn delete_groups(
    ctx: &Rc<ShardContext>,
    req: &RawRequest,
) -> Result<Outcome, RequestError> {
    let b: DeleteGroupsRequest = req.decode()?;
    let mut resp = DeleteGroupsResponse::default();
    for g in &b.groups_names {
        let mut r = delete_groups_response::DeletableGroupResult::default();
        r.group_id = g.clone();
        r.error_code = ctx.delete_group(g.0.to_string()).await;
        resp.results.push(r);
    }
    respond(req, &resp)
}

/// ConsumerGroupHeartbeat v0 (KIP-848): join, stay, reconcile, leave — one request type.
fn consumer_group_heartbeat(
    ctx: &Rc<ShardContext>,
    req: &RawRequest,
) -> Result<Outcome, RequestError> {
    let b: ConsumerGroupHeartbeatRequest = req.decode()?;
    let snap = ctx.snapshot();
    let owned = b.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|tp| {
                snap.topic_by_id(tp.topic_id)
                    .map(|(name, _)| (name.clone(), tp))
            })
            .flat_map(|(name, tp)| tp.partitions.iter().map(move |p| (name.clone(), *p)))
            .collect()
    });
    let args = crate::group::coordinator::HeartbeatArgs {
        group: b.group_id.0.to_string(),
        member_id: b.member_id.to_string(),
        member_epoch: b.member_epoch,
        instance_id: b.instance_id.as_ref().map(|s| s.to_string()),
        rack: b.rack_id.as_ref().map(|s| s.to_string()),
        client_id: req.client_id.clone().unwrap_or_default(),
        subscribed: b
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        server_assignor: b.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        topics: snap
            .topics
            .iter()
            .filter(|(n, _)| !n.starts_with("__"))
            .map(|(n, t)| (n.clone(), t.partitions))
            .collect(),
        session_timeout: std::time::Duration::from_millis(
            ctx.config.server.consumer_group_session_timeout_ms,
        ),
    };
    let r = ctx.groups.consumer_heartbeat(args);
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    resp.error_code = r.error;
    resp.error_message = r.message.map(sb);
    resp.member_id = Some(sb(r.member_id));
    resp.member_epoch = r.member_epoch;
    resp.heartbeat_interval_ms = ctx.config.server.consumer_group_heartbeat_interval_ms as i32;
    resp.assignment = r.assignment.map(|a| {
        let mut out = consumer_group_heartbeat_response::Assignment::default();
        out.topic_partitions = a
            .into_iter()
            .filter_map(|(t, ps)| {
                let mut tp = consumer_group_heartbeat_response::TopicPartitions::default();
                tp.topic_id = snap.topics.get(&t)?.uuid();
                tp.partitions = ps;
                Some(tp)
            })
            .collect();
        out
    });
    respond(req, &resp)
}

/// ConsumerGroupDescribe v0.
fn consumer_group_describe(
    ctx: &Rc<ShardContext>,
    req: &RawRequest,
) -> Result<Outcome, RequestError> {
    let b: ConsumerGroupDescribeRequest = req.decode()?;
    let snap = ctx.snapshot();
    let to_assignment = |a: Vec<(String, Vec<i32>)>| {
        let mut out = consumer_group_describe_response::Assignment::default();
        out.topic_partitions = a
            .into_iter()
            .map(|(t, ps)| {
                let mut tp = consumer_group_describe_response::TopicPartitions::default();
                tp.topic_id = snap.topics.get(&t).map(|m| m.uuid()).unwrap_or_default();
                tp.topic_name = TopicName(sb(t));
                tp.partitions = ps;
                tp
            })
            .collect();
        out
    };
    let mut resp = ConsumerGroupDescribeResponse::default();
    for g in &b.group_ids {
        let d = ctx.groups.describe_consumer_group(&g.0);
        let mut out = consumer_group_describe_response::DescribedGroup::default();
        out.group_id = g.clone();
        out.error_code = d.error;
        out.group_state = sb(d.state);
        out.group_epoch = d.group_epoch;
        out.assignment_epoch = d.assignment_epoch;
        out.assignor_name = sb(d.assignor);
        out.authorized_operations = i32::MIN;
        out.members = d
            .members
            .into_iter()
            .map(|m| {
                let mut o = consumer_group_describe_response::Member::default();
                o.member_id = sb(m.member_id);
                o.instance_id = m.instance_id.map(sb);
                o.rack_id = m.rack.map(sb);
                o.member_epoch = m.member_epoch;
                o.client_id = sb(m.client_id);
                o.client_host = sb("/127.0.0.1");
                o.subscribed_topic_names =
                    m.subscribed.into_iter().map(|t| TopicName(sb(t))).collect();
                o.assignment = to_assignment(m.assignment);
                o.target_assignment = to_assignment(m.target);
                o
            })
            .collect();
        resp.groups.push(out);
    }
    respond(req, &resp)
}
