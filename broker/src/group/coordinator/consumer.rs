//! KIP-848, the consumer rebalance protocol: the broker computes assignments (server-side
//! assignors `uniform` and `range`) and moves each member towards its target incrementally
//! through `ConsumerGroupHeartbeat` — no stop-the-world rebalance. A partition is handed to
//! its new owner only after its previous owner has reported it released, so a partition is
//! never owned by two members at once.
//!
//! Lives on: the group's home shard, inside [`super::Coordinator`].

use super::{codes, Coordinator, Group};
use crate::errors;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tracing::info;

pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;

type Tp = (String, i32);

#[derive(Debug, Default)]
pub(super) struct ConsumerState {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, CMember>,
    pub target: HashMap<String, BTreeSet<Tp>>,
    /// (topic, partitions) of everything subscribed, when the target was computed.
    pub subscribed_metadata: Vec<(String, i32)>,
}

#[derive(Debug)]
pub(super) struct CMember {
    pub epoch: i32,
    pub previous_epoch: i32,
    pub instance_id: Option<String>,
    pub rack: Option<String>,
    pub client_id: String,
    pub subscribed: Vec<String>,
    pub server_assignor: Option<String>,
    pub session_timeout: Duration,
    pub last_seen: Instant,
    /// What the member was last told it owns.
    pub assigned: BTreeSet<Tp>,
    /// What the member last reported owning.
    pub owned: BTreeSet<Tp>,
}

pub struct HeartbeatArgs {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack: Option<String>,
    pub client_id: String,
    pub subscribed: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    pub owned: Option<Vec<Tp>>,
    /// Partition counts of existing topics (from the metadata snapshot).
    pub topics: HashMap<String, i32>,
    pub session_timeout: Duration,
}

#[derive(Debug, Default)]
pub struct HeartbeatResult {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<Vec<(String, Vec<i32>)>>,
}

#[derive(Debug, Clone)]
pub struct DescribedConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub subscribed: Vec<String>,
    pub assignment: Vec<(String, Vec<i32>)>,
    pub target: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone)]
pub struct DescribedConsumerGroup {
    pub error: i16,
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<DescribedConsumerMember>,
}

fn grouped(set: &BTreeSet<Tp>) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    for (t, p) in set {
        match out.last_mut() {
            Some((lt, ps)) if lt == t => ps.push(*p),
            _ => out.push((t.clone(), vec![*p])),
        }
    }
    out
}

impl ConsumerState {
    fn metadata(&self, topics: &HashMap<String, i32>) -> Vec<(String, i32)> {
        let subscribed: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .collect();
        subscribed
            .into_iter()
            .filter_map(|t| topics.get(t).map(|n| (t.clone(), *n)))
            .collect()
    }

    /// Recomputes the target assignment for the current group epoch.
    fn compute_target(&mut self, topics: &HashMap<String, i32>) {
        self.subscribed_metadata = self.metadata(topics);
        let members: Vec<String> = self.members.keys().cloned().collect();
        let eligible = |m: &str, t: &str| {
            self.members
                .get(m)
                .is_some_and(|x| x.subscribed.iter().any(|s| s == t))
        };
        let mut new: HashMap<String, BTreeSet<Tp>> = members
            .iter()
            .map(|m| (m.clone(), BTreeSet::new()))
            .collect();
        if self.assignor == "range" {
            for (t, n) in &self.subscribed_metadata {
                let subs: Vec<&String> = members.iter().filter(|m| eligible(m, t)).collect();
                if subs.is_empty() {
                    continue;
                }
                let (per, extra) = (*n as usize / subs.len(), *n as usize % subs.len());
                let mut p = 0;
                for (i, m) in subs.iter().enumerate() {
                    let count = per + usize::from(i < extra);
                    for _ in 0..count {
                        new.get_mut(*m).expect("member").insert((t.clone(), p));
                        p += 1;
                    }
                }
            }
        } else {
            // Uniform and sticky: members keep what they own up to an even share (`base`,
            // or `base + 1` for `total % n` of them); the rest goes to the least loaded.
            let all: Vec<Tp> = self
                .subscribed_metadata
                .iter()
                .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
                .collect();
            let n = members.len().max(1);
            let base = all.len() / n;
            let mut extra_slots = all.len() % n;
            let mut free = Vec::new();
            for tp in all {
                let owner = self
                    .target
                    .iter()
                    .find(|(m, set)| set.contains(&tp) && eligible(m, &tp.0))
                    .map(|(m, _)| m.clone());
                let have = owner.as_ref().and_then(|o| new.get(o)).map(|s| s.len());
                match (owner, have) {
                    (Some(o), Some(h)) if h < base => {
                        new.get_mut(&o).expect("member").insert(tp);
                    }
                    (Some(o), Some(h)) if h == base && extra_slots > 0 => {
                        extra_slots -= 1;
                        new.get_mut(&o).expect("member").insert(tp);
                    }
                    _ => free.push(tp),
                }
            }
            for tp in free {
                if let Some(m) = members
                    .iter()
                    .filter(|m| eligible(m, &tp.0))
                    .min_by_key(|m| (new[*m].len(), (*m).clone()))
                {
                    new.get_mut(m).expect("member").insert(tp);
                }
            }
        }
        self.target = new;
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves one member towards its target: first it must release what it no longer gets;
    /// then it receives what nobody else holds any more.
    fn reconcile(&mut self, member_id: &str) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let others: BTreeSet<Tp> = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.owned.iter().chain(m.assigned.iter()).cloned())
            .collect();
        let epoch = self.assignment_epoch;
        let m = self.members.get_mut(member_id).expect("member");
        let holding: BTreeSet<Tp> = m.owned.union(&m.assigned).cloned().collect();
        let keep: BTreeSet<Tp> = holding.intersection(&target).cloned().collect();
        if m.owned.iter().any(|tp| !target.contains(tp)) {
            // Revocation first; the epoch moves once the member has let go.
            m.assigned = keep;
            return;
        }
        let add: BTreeSet<Tp> = target
            .difference(&keep)
            .filter(|tp| !others.contains(*tp))
            .cloned()
            .collect();
        m.assigned = keep.union(&add).cloned().collect();
        if m.epoch != epoch {
            m.previous_epoch = m.epoch;
            m.epoch = epoch;
        }
    }

    pub(super) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.members.iter().all(|(id, m)| {
            m.epoch == self.assignment_epoch
                && self.target.get(id).is_some_and(|t| *t == m.assigned)
        }) {
            "Stable"
        } else {
            "Reconciling"
        }
    }
}

impl Coordinator {
    pub fn consumer_heartbeat(&self, a: HeartbeatArgs) -> HeartbeatResult {
        let now = Instant::now();
        let fail = |error: i16, message: &str| HeartbeatResult {
            error,
            message: Some(message.to_string()),
            member_epoch: -1,
            ..Default::default()
        };
        if a.group.is_empty() {
            return fail(codes::INVALID_GROUP_ID, "empty group id");
        }
        if let Some(name) = &a.server_assignor {
            if name != "uniform" && name != "range" {
                return fail(
                    UNSUPPORTED_ASSIGNOR,
                    "supported server assignors: uniform, range",
                );
            }
        }
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(a.group.clone()).or_insert_with(Group::new);
        if g.consumer.is_none() {
            if !g.members.is_empty() {
                return fail(
                    codes::INCONSISTENT_GROUP_PROTOCOL,
                    "the group uses the classic protocol",
                );
            }
            g.consumer = Some(ConsumerState {
                assignor: "uniform".into(),
                ..Default::default()
            });
            g.protocol_type = Some("consumer".into());
        }
        let cs = g.consumer.as_mut().expect("set");
        // Leaving (-1) or a static member's temporary leave (-2).
        if a.member_epoch < 0 {
            if cs.members.remove(&a.member_id).is_some() {
                cs.target.remove(&a.member_id);
                cs.group_epoch += 1;
                info!(group = %a.group, member = %a.member_id, "member left");
            }
            return HeartbeatResult {
                error: errors::NONE,
                member_id: a.member_id,
                member_epoch: a.member_epoch,
                ..Default::default()
            };
        }
        let mut member_id = a.member_id.clone();
        if a.member_epoch == 0 {
            if member_id.is_empty() {
                member_id = uuid::Uuid::new_v4().simple().to_string();
            }
            if let Some(iid) = &a.instance_id {
                let old: Vec<String> = cs
                    .members
                    .iter()
                    .filter(|(id, m)| m.instance_id.as_ref() == Some(iid) && **id != member_id)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in old {
                    cs.members.remove(&id);
                    cs.target.remove(&id);
                }
            }
            let fresh = CMember {
                epoch: 0,
                previous_epoch: -1,
                instance_id: a.instance_id.clone(),
                rack: a.rack.clone(),
                client_id: a.client_id.clone(),
                subscribed: a.subscribed.clone().unwrap_or_default(),
                server_assignor: a.server_assignor.clone(),
                session_timeout: a.session_timeout,
                last_seen: now,
                assigned: BTreeSet::new(),
                owned: BTreeSet::new(),
            };
            cs.members.insert(member_id.clone(), fresh);
            cs.group_epoch += 1;
        } else {
            let Some(m) = cs.members.get_mut(&member_id) else {
                return fail(codes::UNKNOWN_MEMBER_ID, "unknown member id");
            };
            if a.member_epoch != m.epoch && a.member_epoch != m.previous_epoch {
                return fail(FENCED_MEMBER_EPOCH, "the member epoch is fenced");
            }
            m.last_seen = now;
            if let Some(sub) = &a.subscribed {
                if *sub != m.subscribed {
                    m.subscribed = sub.clone();
                    cs.group_epoch += 1;
                }
            }
            if let Some(owned) = &a.owned {
                m.owned = owned.iter().cloned().collect();
            }
        }
        if let Some(name) = cs.members.values().find_map(|m| m.server_assignor.clone()) {
            cs.assignor = name;
        }
        if cs.metadata(&a.topics) != cs.subscribed_metadata {
            cs.group_epoch = cs.group_epoch.max(cs.assignment_epoch + 1);
        }
        if cs.group_epoch > cs.assignment_epoch {
            cs.compute_target(&a.topics);
            info!(group = %a.group, epoch = cs.group_epoch, members = cs.members.len(), "new target assignment");
        }
        cs.reconcile(&member_id);
        let m = &cs.members[&member_id];
        tracing::debug!(group = %a.group, member = %member_id, epoch_in = a.member_epoch, epoch_out = m.epoch, owned_in = ?a.owned, assigned = ?m.assigned, "consumer heartbeat");
        HeartbeatResult {
            error: errors::NONE,
            message: None,
            member_id,
            member_epoch: m.epoch,
            assignment: Some(grouped(&m.assigned)),
        }
    }

    /// Removes consumer-protocol members whose session expired.
    pub(super) fn expire_consumer_members(g: &mut Group, now: Instant) -> Vec<String> {
        let Some(cs) = g.consumer.as_mut() else {
            return Vec::new();
        };
        let expired: Vec<String> = cs
            .members
            .iter()
            .filter(|(_, m)| now.duration_since(m.last_seen) > m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            cs.members.remove(id);
            cs.target.remove(id);
        }
        if !expired.is_empty() {
            cs.group_epoch += 1;
        }
        expired
    }

    /// Offset commits from consumer-protocol members carry the member epoch.
    pub(super) fn check_consumer_commit(cs: &ConsumerState, epoch: i32, member_id: &str) -> i16 {
        if epoch < 0 {
            return if cs.members.is_empty() {
                errors::NONE
            } else {
                codes::ILLEGAL_GENERATION
            };
        }
        match cs.members.get(member_id) {
            None => codes::UNKNOWN_MEMBER_ID,
            Some(m) if epoch != m.epoch && epoch != m.previous_epoch => STALE_MEMBER_EPOCH,
            Some(_) => errors::NONE,
        }
    }

    pub fn describe_consumer_group(&self, group: &str) -> DescribedConsumerGroup {
        let groups = self.groups.borrow();
        let Some(cs) = groups.get(group).and_then(|g| g.consumer.as_ref()) else {
            return DescribedConsumerGroup {
                error: codes::GROUP_ID_NOT_FOUND,
                state: "Dead",
                group_epoch: -1,
                assignment_epoch: -1,
                assignor: String::new(),
                members: Vec::new(),
            };
        };
        DescribedConsumerGroup {
            error: errors::NONE,
            state: cs.state_name(),
            group_epoch: cs.group_epoch,
            assignment_epoch: cs.assignment_epoch,
            assignor: cs.assignor.clone(),
            members: cs
                .members
                .iter()
                .map(|(id, m)| DescribedConsumerMember {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack: m.rack.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    subscribed: m.subscribed.clone(),
                    assignment: grouped(&m.assigned),
                    target: grouped(cs.target.get(id).unwrap_or(&BTreeSet::new())),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(member: &str, epoch: i32, owned: Option<Vec<Tp>>) -> HeartbeatArgs {
        HeartbeatArgs {
            group: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack: None,
            client_id: "c".into(),
            subscribed: Some(vec!["t".into()]),
            server_assignor: None,
            owned,
            topics: [("t".to_string(), 6)].into_iter().collect(),
            session_timeout: Duration::from_secs(45),
        }
    }

    fn parts(r: &HeartbeatResult) -> Vec<i32> {
        r.assignment
            .as_ref()
            .map(|a| a.iter().flat_map(|(_, p)| p.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn incremental_handover_never_double_assigns() {
        let c = Coordinator::new(Duration::ZERO, Duration::from_secs(3600));
        let a = c.consumer_heartbeat(hb("", 0, None));
        assert_eq!(parts(&a), vec![0, 1, 2, 3, 4, 5]);
        let a_id = a.member_id.clone();
        let owned_a: Vec<Tp> = (0..6).map(|p| ("t".to_string(), p)).collect();
        let a = c.consumer_heartbeat(hb(&a_id, a.member_epoch, Some(owned_a.clone())));
        // B joins: it gets nothing until A releases.
        let b = c.consumer_heartbeat(hb("", 0, None));
        assert!(parts(&b).is_empty(), "A still owns everything");
        let b_id = b.member_id.clone();
        // A is told to shrink to its half.
        let a2 = c.consumer_heartbeat(hb(&a_id, a.member_epoch, Some(owned_a)));
        let kept = parts(&a2);
        assert_eq!(kept.len(), 3);
        // A reports it released the rest; B then receives them.
        let owned: Vec<Tp> = kept.iter().map(|p| ("t".to_string(), *p)).collect();
        let a3 = c.consumer_heartbeat(hb(&a_id, a2.member_epoch, Some(owned)));
        assert_eq!(parts(&a3), kept);
        let b2 = c.consumer_heartbeat(hb(&b_id, b.member_epoch, Some(vec![])));
        let mut all = parts(&b2);
        all.extend(kept);
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5], "each partition owned once");
        assert_eq!(c.describe_consumer_group("g").state, "Stable");
        // Stale epochs are fenced.
        assert_eq!(
            c.consumer_heartbeat(hb(&b_id, 99, None)).error,
            FENCED_MEMBER_EPOCH
        );
        // Leaving frees the partitions for the other member.
        c.consumer_heartbeat(hb(&b_id, -1, None));
        let a4 = c.consumer_heartbeat(hb(&a_id, a3.member_epoch, None));
        assert_eq!(parts(&a4).len(), 6);
    }
}
