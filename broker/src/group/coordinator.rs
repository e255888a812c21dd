//! Group state machine (Kafka's classic rebalance protocol): Empty → PreparingRebalance →
//! CompletingRebalance → Stable, and Dead once deleted.
//!
//! Lives on: one shard; it holds the groups whose offsets partition that shard owns.
//! No borrow of the group table is held across an `.await`.

use super::records::{GroupValue, Key, OffsetValue};
use crate::errors;
use bytes::Bytes;
use futures_channel::oneshot;
use sluice_protocol::batch::BatchBuilder;
use sluice_storage::Acks;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use tracing::info;

mod consumer;
pub use consumer::HeartbeatArgs;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub mod codes {
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const INVALID_GROUP_ID: i16 = 24;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, group instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// A static leader rejoining a stable group: keep the current assignment (KIP-814).
    pub skip_assignment: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

pub struct JoinArgs {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first learn its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct DescribedGroup {
    pub error: i16,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids in the order they joined (the first is the default leader).
    join_order: Vec<String>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not joined yet.
    pending: HashSet<String>,
    rebalance_deadline: Instant,
    /// A new group waits this long for more members before the first generation.
    initial_delay_until: Option<Instant>,
    offsets: HashMap<(String, i32), OffsetValue>,
    /// Set for groups using the consumer protocol (KIP-848) instead of the classic one.
    consumer: Option<consumer::ConsumerState>,
}

impl Group {
    fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            join_order: Vec::new(),
            pending: HashSet::new(),
            rebalance_deadline: Instant::now(),
            initial_delay_until: None,
            offsets: HashMap::new(),
            consumer: None,
        }
    }

    /// Takes a member out (answering its waiters with `error`) and returns it.
    fn remove_member_quietly(&mut self, id: &str, error: i16) -> Member {
        let mut m = self.members.remove(id).expect("member exists");
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResult {
                error,
                member_id: id.to_string(),
                generation: -1,
                ..Default::default()
            });
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResult {
                error,
                ..Default::default()
            });
        }
        m
    }

    fn remove_member(&mut self, id: &str, error: i16) {
        if let Some(m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter {
                let _ = w.send(JoinResult {
                    error,
                    member_id: id.to_string(),
                    generation: -1,
                    ..Default::default()
                });
            }
            if let Some(w) = m.sync_waiter {
                let _ = w.send(SyncResult {
                    error,
                    ..Default::default()
                });
            }
        }
        self.join_order.retain(|m| m != id);
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// Protocols every member supports, in the preference order of the first member.
    fn common_protocols(&self) -> Vec<String> {
        let Some(first) = self.join_order.first().and_then(|id| self.members.get(id)) else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResult {
                        error: codes::REBALANCE_IN_PROGRESS,
                        ..Default::default()
                    });
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0))
            .max()
            .unwrap_or(0);
        self.rebalance_deadline = now + Duration::from_millis(timeout as u64);
        if self.state == GroupState::Empty {
            let until = now + initial_delay;
            self.initial_delay_until = Some(until);
            self.rebalance_deadline = self.rebalance_deadline.max(until);
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase when every member has rejoined (after the initial delay of
    /// a new group) or the rebalance timeout has passed. Returns true if a generation began.
    fn try_complete_join(&mut self, now: Instant) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let delaying = self.initial_delay_until.is_some_and(|t| now < t);
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        if !(now >= self.rebalance_deadline || (all_joined && !delaying)) {
            return false;
        }
        self.initial_delay_until = None;
        let stragglers: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in stragglers {
            self.remove_member(&id, codes::UNKNOWN_MEMBER_ID);
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return true;
        }
        self.protocol = self.common_protocols().into_iter().next();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.join_order.first().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .join_order
            .iter()
            .filter_map(|id| {
                let m = self.members.get(id)?;
                let meta = m
                    .protocols
                    .iter()
                    .find(|(n, _)| Some(n) == protocol.as_ref())
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                Some((id.clone(), m.instance_id.clone(), meta))
            })
            .collect();
        for (id, m) in self.members.iter_mut() {
            m.last_seen = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error: errors::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                });
            }
        }
        true
    }
}

/// All groups homed on one shard. Lives on: that shard.
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    pub initial_delay: Duration,
    pub offsets_retention: Duration,
}

/// Records to append for a commit or a deletion: (key, value or tombstone).
pub type GroupRecords = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl Coordinator {
    pub fn new(initial_delay: Duration, offsets_retention: Duration) -> Coordinator {
        Coordinator {
            groups: RefCell::new(HashMap::new()),
            initial_delay,
            offsets_retention,
        }
    }

    // `Err` is an immediate answer (not a failure), sent back at once: no point boxing it.
    #[allow(clippy::result_large_err)]
    pub fn join(&self, a: JoinArgs) -> Result<oneshot::Receiver<JoinResult>, JoinResult> {
        let now = Instant::now();
        let fail = |error: i16, member_id: &str| JoinResult {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        };
        if a.group.is_empty() {
            return Err(fail(codes::INVALID_GROUP_ID, &a.member_id));
        }
        if !(1..=1_800_000).contains(&a.session_timeout_ms) {
            return Err(fail(codes::INVALID_SESSION_TIMEOUT, &a.member_id));
        }
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(a.group.clone()).or_insert_with(Group::new);
        if g.state == GroupState::Dead {
            *g = Group::new();
        }
        if !g.members.is_empty() {
            if g.protocol_type.as_deref() != Some(a.protocol_type.as_str()) {
                return Err(fail(codes::INCONSISTENT_GROUP_PROTOCOL, &a.member_id));
            }
            let common = g.common_protocols();
            let only_member_rejoining =
                g.members.len() == 1 && g.members.contains_key(&a.member_id);
            if !(a.protocols.iter().any(|(n, _)| common.contains(n)) || only_member_rejoining) {
                return Err(fail(codes::INCONSISTENT_GROUP_PROTOCOL, &a.member_id));
            }
        }
        let mut member_id = a.member_id.clone();
        if member_id.is_empty() {
            let fresh = format!(
                "{}-{}",
                a.instance_id
                    .as_deref()
                    .unwrap_or(if a.client_id.is_empty() {
                        "member"
                    } else {
                        &a.client_id
                    }),
                uuid::Uuid::new_v4()
            );
            if let Some(iid) = &a.instance_id {
                // A static member coming back to a stable group takes over its old
                // identity and assignment without a rebalance (KIP-345).
                let old_id = g
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_ref() == Some(iid))
                    .map(|(id, _)| id.clone());
                if let (Some(old_id), GroupState::Stable) = (old_id, g.state) {
                    let mut m = g.remove_member_quietly(&old_id, codes::FENCED_INSTANCE_ID);
                    m.protocols = a.protocols.clone();
                    m.last_seen = now;
                    m.session_timeout_ms = a.session_timeout_ms;
                    m.rebalance_timeout_ms = a.rebalance_timeout_ms;
                    let was_leader = g.leader.as_deref() == Some(old_id.as_str());
                    g.members.insert(fresh.clone(), m);
                    if let Some(pos) = g.join_order.iter().position(|x| *x == old_id) {
                        g.join_order[pos] = fresh.clone();
                    }
                    if was_leader {
                        g.leader = Some(fresh.clone());
                    }
                    info!(group = %a.group, instance = %iid, "static member rejoined without a rebalance");
                    return Err(JoinResult {
                        error: errors::NONE,
                        generation: g.generation,
                        protocol_type: g.protocol_type.clone(),
                        protocol: g.protocol.clone(),
                        leader: g.leader.clone().unwrap_or_default(),
                        member_id: fresh,
                        members: Vec::new(),
                        skip_assignment: was_leader,
                    });
                }
                // Otherwise the new incarnation fences the old one.
                let old: Vec<String> = g
                    .members
                    .iter()
                    .filter(|(_, m)| m.instance_id.as_ref() == Some(iid))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in old {
                    g.remove_member(&id, codes::FENCED_INSTANCE_ID);
                }
            } else if a.require_known_member_id {
                g.pending.insert(fresh.clone());
                return Err(fail(codes::MEMBER_ID_REQUIRED, &fresh));
            }
            member_id = fresh;
        } else if !g.members.contains_key(&member_id) && !g.pending.remove(&member_id) {
            return Err(fail(codes::UNKNOWN_MEMBER_ID, &member_id));
        }
        let (tx, rx) = oneshot::channel();
        if g.members.is_empty() {
            g.protocol_type = Some(a.protocol_type.clone());
        }
        match g.members.get_mut(&member_id) {
            Some(m) => {
                m.protocols = a.protocols;
                m.session_timeout_ms = a.session_timeout_ms;
                m.rebalance_timeout_ms = a.rebalance_timeout_ms;
                m.last_seen = now;
                if let Some(old) = m.join_waiter.replace(tx) {
                    let _ = old.send(fail(codes::REBALANCE_IN_PROGRESS, &member_id));
                }
            }
            None => {
                g.join_order.push(member_id.clone());
                g.members.insert(
                    member_id.clone(),
                    Member {
                        instance_id: a.instance_id,
                        client_id: a.client_id,
                        client_host: a.client_host,
                        session_timeout_ms: a.session_timeout_ms,
                        rebalance_timeout_ms: a.rebalance_timeout_ms,
                        protocols: a.protocols,
                        assignment: Bytes::new(),
                        last_seen: now,
                        join_waiter: Some(tx),
                        sync_waiter: None,
                    },
                );
            }
        }
        if g.state != GroupState::PreparingRebalance {
            g.prepare_rebalance(now, self.initial_delay);
        }
        if g.try_complete_join(now) {
            info!(group = %a.group, generation = g.generation, members = g.members.len(), "group rebalanced");
        }
        Ok(rx)
    }

    pub fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<oneshot::Receiver<SyncResult>, SyncResult> {
        let fail = |error: i16| SyncResult {
            error,
            ..Default::default()
        };
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return Err(fail(codes::UNKNOWN_MEMBER_ID));
        };
        if !g.members.contains_key(member_id) {
            return Err(fail(codes::UNKNOWN_MEMBER_ID));
        }
        if generation != g.generation {
            return Err(fail(codes::ILLEGAL_GENERATION));
        }
        let ok = |g: &Group, assignment: Bytes| SyncResult {
            error: errors::NONE,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            assignment,
        };
        match g.state {
            GroupState::PreparingRebalance => Err(fail(codes::REBALANCE_IN_PROGRESS)),
            GroupState::Empty | GroupState::Dead => Err(fail(codes::UNKNOWN_MEMBER_ID)),
            GroupState::Stable => {
                let a = g.members[member_id].assignment.clone();
                Err(ok(g, a))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let m = g.members.get_mut(member_id).expect("checked");
                m.last_seen = Instant::now();
                m.sync_waiter = Some(tx);
                if g.leader.as_deref() == Some(member_id) {
                    let map: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, m) in g.members.iter_mut() {
                        m.assignment = map.get(id).cloned().unwrap_or_default();
                    }
                    g.state = GroupState::Stable;
                    let (pt, p) = (g.protocol_type.clone(), g.protocol.clone());
                    for m in g.members.values_mut() {
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncResult {
                                error: errors::NONE,
                                protocol_type: pt.clone(),
                                protocol: p.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                }
                Ok(rx)
            }
        }
    }

    pub fn heartbeat(&self, group: &str, generation: i32, member_id: &str) -> i16 {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        let Some(m) = g.members.get_mut(member_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        m.last_seen = Instant::now();
        if generation != g.generation {
            return codes::ILLEGAL_GENERATION;
        }
        match g.state {
            GroupState::PreparingRebalance => codes::REBALANCE_IN_PROGRESS,
            _ => errors::NONE,
        }
    }

    /// Removes members (by member id, or by group instance id when the member id is empty).
    pub fn leave(&self, group: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return vec![codes::UNKNOWN_MEMBER_ID; members.len()];
        };
        let mut out = Vec::with_capacity(members.len());
        let mut changed = false;
        for (mid, iid) in members {
            let id = if mid.is_empty() {
                iid.as_ref().and_then(|iid| {
                    g.members
                        .iter()
                        .find(|(_, m)| m.instance_id.as_ref() == Some(iid))
                        .map(|(id, _)| id.clone())
                })
            } else {
                g.members.contains_key(mid).then(|| mid.clone())
            };
            match id {
                Some(id) => {
                    g.remove_member(&id, codes::UNKNOWN_MEMBER_ID);
                    changed = true;
                    out.push(errors::NONE);
                }
                None => out.push(codes::UNKNOWN_MEMBER_ID),
            }
        }
        if changed {
            if g.state != GroupState::PreparingRebalance {
                g.prepare_rebalance(now, Duration::ZERO);
                g.initial_delay_until = None;
            }
            g.try_complete_join(now);
        }
        out
    }

    /// Expires members whose session timed out and completes overdue joins.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        for (name, g) in groups.iter_mut() {
            let gone = Self::expire_consumer_members(g, now);
            if !gone.is_empty() {
                info!(group = %name, expired = ?gone, "consumer-protocol member sessions expired");
            }
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join_waiter.is_none()
                        && now.duration_since(m.last_seen)
                            > Duration::from_millis(m.session_timeout_ms.max(0) as u64)
                })
                .map(|(id, _)| id.clone())
                .collect();
            if !expired.is_empty() {
                info!(group = %name, ?expired, "member sessions expired");
                for id in &expired {
                    g.remove_member(id, codes::UNKNOWN_MEMBER_ID);
                }
                if g.state != GroupState::PreparingRebalance {
                    g.prepare_rebalance(now, Duration::ZERO);
                    g.initial_delay_until = None;
                }
            }
            if g.try_complete_join(now) {
                info!(group = %name, generation = g.generation, members = g.members.len(), "group rebalanced");
            }
        }
    }

    /// Checks a commit's generation and member; `Ok` means the offsets may be written.
    pub fn check_commit(&self, group: &str, generation: i32, member_id: &str) -> i16 {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group) else {
            return if generation < 0 {
                errors::NONE
            } else {
                codes::ILLEGAL_GENERATION
            };
        };
        if let Some(cs) = &g.consumer {
            return Self::check_consumer_commit(cs, generation, member_id);
        }
        if generation < 0 {
            // A "simple" commit (assign() consumers, admin tools): only for groups without members.
            return if g.members.is_empty() {
                errors::NONE
            } else {
                codes::ILLEGAL_GENERATION
            };
        }
        if !g.members.contains_key(member_id) {
            return codes::UNKNOWN_MEMBER_ID;
        }
        if generation != g.generation {
            return codes::ILLEGAL_GENERATION;
        }
        if g.state == GroupState::CompletingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        errors::NONE
    }

    /// Records for a commit (to append before applying it).
    pub fn commit_records(group: &str, offsets: &[(String, i32, OffsetValue)]) -> GroupRecords {
        offsets
            .iter()
            .map(|(t, p, v)| (offset_key(group, t, *p), Some(v.encode())))
            .collect()
    }

    /// Applies a record read back from `__consumer_offsets` (replay) or just written.
    pub fn apply_record(&self, key: &[u8], value: Option<&[u8]>) {
        let Some(key) = Key::decode(key) else { return };
        let mut groups = self.groups.borrow_mut();
        match key {
            Key::Offset {
                group,
                topic,
                partition,
            } => match value.and_then(OffsetValue::decode) {
                Some(v) => {
                    groups
                        .entry(group)
                        .or_insert_with(Group::new)
                        .offsets
                        .insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            Key::Group { group } => match value.and_then(GroupValue::decode) {
                Some(v) => {
                    let g = groups.entry(group).or_insert_with(Group::new);
                    if g.members.is_empty() {
                        g.generation = g.generation.max(v.generation);
                        g.protocol_type = Some(v.protocol_type);
                    }
                }
                None => {
                    groups.remove(&group);
                }
            },
        }
    }

    pub fn group_metadata_record(
        &self,
        group: &str,
        now_ms: i64,
    ) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        let groups = self.groups.borrow();
        let g = groups.get(group)?;
        let v = GroupValue {
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            generation: g.generation,
            protocol: g.protocol.clone(),
            leader: g.leader.clone(),
            state_timestamp_ms: now_ms,
        };
        Some((
            Key::Group {
                group: group.to_string(),
            }
            .encode(),
            Some(v.encode()),
        ))
    }

    /// Committed offsets: for the listed partitions, or all when `topics` is None.
    /// Unknown partitions get offset -1.
    pub fn fetch_offsets(
        &self,
        group: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, i32, OffsetValue)> {
        let groups = self.groups.borrow();
        let none = OffsetValue {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: -1,
        };
        let g = groups.get(group);
        match topics {
            Some(ts) => ts
                .into_iter()
                .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                .map(|(t, p)| {
                    let v = g
                        .and_then(|g| g.offsets.get(&(t.clone(), p)).cloned())
                        .unwrap_or_else(|| none.clone());
                    (t, p, v)
                })
                .collect(),
            None => {
                let mut all: Vec<_> = g
                    .map(|g| {
                        g.offsets
                            .iter()
                            .map(|((t, p), v)| (t.clone(), *p, v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                all
            }
        }
    }

    pub fn describe(&self, group: &str) -> DescribedGroup {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group) else {
            return DescribedGroup {
                error: errors::NONE,
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        DescribedGroup {
            error: errors::NONE,
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: g
                .join_order
                .iter()
                .filter_map(|id| {
                    let m = g.members.get(id)?;
                    Some(DescribedMember {
                        member_id: id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: m
                            .protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default(),
                        assignment: m.assignment.clone(),
                    })
                })
                .collect(),
        }
    }

    /// (group, protocol type, state) of every group here.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        self.groups
            .borrow()
            .iter()
            .filter(|(_, g)| g.state != GroupState::Dead)
            .map(|(n, g)| {
                let state = match &g.consumer {
                    Some(cs) => cs.state_name(),
                    None => g.state.name(),
                };
                (
                    n.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    state,
                )
            })
            .collect()
    }

    /// Deletes an empty group: returns the tombstones to write, or an error code.
    pub fn delete(&self, group: &str) -> Result<GroupRecords, i16> {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get(group) else {
            return Err(codes::GROUP_ID_NOT_FOUND);
        };
        if !g.members.is_empty() || g.consumer.as_ref().is_some_and(|c| !c.members.is_empty()) {
            return Err(codes::NON_EMPTY_GROUP);
        }
        let mut recs: GroupRecords = g
            .offsets
            .keys()
            .map(|(t, p)| (offset_key(group, t, *p), None))
            .collect();
        recs.push((
            Key::Group {
                group: group.to_string(),
            }
            .encode(),
            None,
        ));
        groups.remove(group);
        Ok(recs)
    }

    /// Removes committed offsets of (topic, partition)s; returns their tombstones.
    pub fn delete_offsets(
        &self,
        group: &str,
        parts: &[(String, i32)],
    ) -> Result<GroupRecords, i16> {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return Err(codes::GROUP_ID_NOT_FOUND);
        };
        Ok(parts
            .iter()
            .filter(|k| g.offsets.remove(*k).is_some())
            .map(|(t, p)| (offset_key(group, t, *p), None))
            .collect())
    }

    /// Offsets of empty groups older than the retention: removed, tombstones returned.
    pub fn expire_offsets(&self, now_ms: i64) -> Vec<(String, GroupRecords)> {
        let cutoff = now_ms - self.offsets_retention.as_millis() as i64;
        let mut out = Vec::new();
        for (name, g) in self.groups.borrow_mut().iter_mut() {
            if !g.members.is_empty() {
                continue;
            }
            let old: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, v)| v.commit_timestamp_ms < cutoff)
                .map(|(k, _)| k.clone())
                .collect();
            if old.is_empty() {
                continue;
            }
            let recs = old
                .iter()
                .map(|(t, p)| {
                    g.offsets.remove(&(t.clone(), *p));
                    (offset_key(name, t, *p), None)
                })
                .collect();
            out.push((name.clone(), recs));
        }
        out
    }
}

/// The `__consumer_offsets` key of one committed offset.
fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    Key::Offset {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
    }
    .encode()
}

/// Builds the record batch appended to `__consumer_offsets` for `records`.
pub fn build_batch(records: &GroupRecords, now_ms: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(now_ms);
    for (k, v) in records {
        b.push(Some(k), v.as_deref(), 0);
    }
    b.build()
}

/// acks level used for coordinator writes: committed offsets are acknowledged only once
/// durable, as Kafka's coordinator waits for `acks=all`.
pub const COMMIT_ACKS: Acks = Acks::All;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(member: &str, protocols: &[&str]) -> JoinArgs {
        JoinArgs {
            group: "g".into(),
            member_id: member.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 1_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from_static(b"meta")))
                .collect(),
            require_known_member_id: true,
        }
    }

    #[test]
    fn two_members_join_sync_and_a_stale_generation_is_fenced() {
        let c = Coordinator::new(Duration::ZERO, Duration::from_secs(3600));
        let id1 = c.join(args("", &["range"])).unwrap_err().member_id;
        let mut rx1 = c.join(args(&id1, &["range", "roundrobin"])).unwrap();
        // With no initial delay the first member completes generation 1 alone.
        let r1 = rx1.try_recv().unwrap().unwrap();
        assert_eq!(
            (r1.error, r1.generation, r1.leader.as_str()),
            (0, 1, id1.as_str())
        );
        let id2 = c.join(args("", &["range"])).unwrap_err().member_id;
        let mut rx2 = c.join(args(&id2, &["range"])).unwrap();
        assert!(
            rx2.try_recv().unwrap().is_none(),
            "waits for the existing member to rejoin"
        );
        assert_eq!(c.heartbeat("g", 1, &id1), codes::REBALANCE_IN_PROGRESS);
        let mut rx1 = c.join(args(&id1, &["range"])).unwrap();
        let (r1, r2) = (
            rx1.try_recv().unwrap().unwrap(),
            rx2.try_recv().unwrap().unwrap(),
        );
        assert_eq!((r1.generation, r2.generation), (2, 2));
        assert_eq!(r1.members.len(), 2, "the leader gets every member");
        assert!(r2.members.is_empty());
        assert_eq!(r1.protocol.as_deref(), Some("range"));
        let mut s2 = c.sync("g", 2, &id2, vec![]).unwrap();
        let mut s1 = c
            .sync(
                "g",
                2,
                &id1,
                vec![
                    (id1.clone(), Bytes::from_static(b"a1")),
                    (id2.clone(), Bytes::from_static(b"a2")),
                ],
            )
            .unwrap();
        assert_eq!(
            s2.try_recv().unwrap().unwrap().assignment,
            Bytes::from_static(b"a2")
        );
        assert_eq!(
            s1.try_recv().unwrap().unwrap().assignment,
            Bytes::from_static(b"a1")
        );
        assert_eq!(c.heartbeat("g", 2, &id2), 0);
        assert_eq!(c.heartbeat("g", 1, &id2), codes::ILLEGAL_GENERATION);
        assert_eq!(c.check_commit("g", 1, &id2), codes::ILLEGAL_GENERATION);
        assert_eq!(c.check_commit("g", 2, "nobody"), codes::UNKNOWN_MEMBER_ID);
        assert_eq!(c.describe("g").state, "Stable");
        assert_eq!(c.leave("g", &[(id2.clone(), None)]), vec![0]);
        assert_eq!(c.describe("g").state, "PreparingRebalance");
        assert_eq!(c.delete("g").unwrap_err(), codes::NON_EMPTY_GROUP);
    }

    #[test]
    fn offsets_replay_and_tombstones() {
        let c = Coordinator::new(Duration::ZERO, Duration::from_secs(3600));
        let v = OffsetValue {
            offset: 10,
            leader_epoch: 0,
            metadata: String::new(),
            commit_timestamp_ms: 1,
        };
        for (k, val) in Coordinator::commit_records("g", &[("t".into(), 0, v.clone())]) {
            c.apply_record(&k, val.as_deref());
        }
        assert_eq!(c.fetch_offsets("g", None)[0].2.offset, 10);
        assert_eq!(
            c.fetch_offsets("g", Some(vec![("t".into(), vec![1])]))[0]
                .2
                .offset,
            -1
        );
        let tomb = c.delete("g").unwrap();
        assert!(tomb.iter().all(|(_, v)| v.is_none()));
        assert_eq!(c.describe("g").state, "Dead");
    }
}
