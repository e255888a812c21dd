//! The shard: one glommio executor pinned to one core, owning a set of partitions.
//!
//! Lives on: its own core. [`ShardContext`] is built when the shard starts and passed down
//! explicitly (no globals). A partition's home shard is [`shard_for`]; work for a partition
//! owned elsewhere travels as a [`ShardMsg`] over a bounded SPSC channel (glommio's
//! `shared_channel`, lock-free) and the answer comes back on a oneshot.

use crate::config::{resolve_log_config, Config};
use crate::disk::GlommioDisk;
use crate::errors::{self, log_error_code};
use crate::group::coordinator::{
    build_batch, Coordinator, DescribedGroup, GroupRecords, COMMIT_ACKS,
};
use crate::group::records::OffsetValue;
use crate::group::{offsets_partition, OFFSETS_TOPIC};
use crate::handlers::Outcome;
use crate::metadata::{MetaError, Snapshot};
use bytes::Bytes;
use futures_channel::oneshot;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use sluice_protocol::batch::{self, BatchView};
use sluice_protocol::request::{RawRequest, RequestError};
use sluice_protocol::types::{LeaderEpoch, Offset};
use sluice_storage::clock::{Clock, SystemClock};
use sluice_storage::{Acks, LogConfig, PartitionLog};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub type Log = PartitionLog<GlommioDisk>;

/// Cross-shard channel capacity (messages in flight from one shard to another).
pub const SHARD_CHANNEL_CAPACITY: usize = 1024;

/// The home shard of a partition: FNV-1a of the topic name plus the partition, so a topic's
/// partitions spread over consecutive shards.
pub fn shard_for(topic: &str, partition: i32, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    ((h.wrapping_add(partition as u64)) % shards as u64) as usize
}

#[derive(Debug, Default, Clone)]
pub struct ProduceResult {
    pub error: i16,
    pub message: Option<String>,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Default, Clone)]
pub struct FetchResult {
    pub error: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct OffsetsResult {
    pub error: i16,
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: i32,
    pub log_end_offset: i64,
}

/// Work sent to the shard that owns a partition (closed set).
pub enum ShardMsg {
    Produce {
        topic: String,
        partition: i32,
        records: Bytes,
        acks: i16,
        reply: oneshot::Sender<ProduceResult>,
    },
    Fetch {
        topic: String,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        reply: oneshot::Sender<FetchResult>,
    },
    /// Completes when any listed partition has data past its offset, or at the timeout.
    WaitForData {
        parts: Vec<(String, i32, i64)>,
        timeout: Duration,
        reply: oneshot::Sender<()>,
    },
    Offsets {
        topic: String,
        partition: i32,
        timestamp: i64,
        reply: oneshot::Sender<OffsetsResult>,
    },
    ApplyMetadata {
        snapshot: Arc<Snapshot>,
        reply: oneshot::Sender<()>,
    },
    /// A single-group request (JoinGroup, SyncGroup, ...) to run where its group lives.
    GroupRequest {
        req: RawRequest,
        reply: oneshot::Sender<Result<Outcome, RequestError>>,
    },
    FetchOffsets {
        group: String,
        topics: Option<Vec<(String, Vec<i32>)>>,
        reply: oneshot::Sender<Vec<(String, i32, OffsetValue)>>,
    },
    DescribeGroup {
        group: String,
        reply: oneshot::Sender<DescribedGroup>,
    },
    ListGroups {
        reply: oneshot::Sender<Vec<(String, String, &'static str)>>,
    },
    DeleteGroup {
        group: String,
        reply: oneshot::Sender<i16>,
    },
}

pub struct CreateTopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i16,
    pub configs: crate::config::TopicConfigs,
}

/// Requests to the metadata service (closed set).
pub enum MetaMsg {
    CreateTopics {
        topics: Vec<CreateTopicSpec>,
        validate_only: bool,
        reply: oneshot::Sender<Vec<Result<(), MetaError>>>,
    },
    DeleteTopics {
        names: Vec<String>,
        reply: oneshot::Sender<Vec<Result<(), MetaError>>>,
    },
    CreatePartitions {
        items: Vec<(String, i32)>,
        validate_only: bool,
        reply: oneshot::Sender<Vec<Result<(), MetaError>>>,
    },
    AlterConfigs {
        topic: String,
        ops: Vec<(String, Option<String>)>,
        incremental: bool,
        validate_only: bool,
        reply: oneshot::Sender<Result<(), MetaError>>,
    },
    AllocateProducerId {
        reply: oneshot::Sender<Result<i64, MetaError>>,
    },
}

/// Per-shard state. Lives on: its shard.
pub struct ShardContext {
    pub id: usize,
    pub shards: usize,
    pub config: Arc<Config>,
    pub log_defaults: LogConfig,
    pub clock: Rc<dyn Clock>,
    peers: Vec<Option<ConnectedSender<ShardMsg>>>,
    meta: ConnectedSender<MetaMsg>,
    snapshot: RefCell<Arc<Snapshot>>,
    /// topic → partition → log, for the partitions this shard owns.
    partitions: RefCell<HashMap<String, HashMap<i32, Rc<Log>>>>,
    pub shutting_down: Cell<bool>,
    pub snapshot_ready: sluice_storage::notify::Notify,
    /// Consumer groups homed on this shard.
    pub groups: Coordinator,
}

impl ShardContext {
    pub fn new(
        id: usize,
        shards: usize,
        config: Arc<Config>,
        peers: Vec<Option<ConnectedSender<ShardMsg>>>,
        meta: ConnectedSender<MetaMsg>,
    ) -> anyhow::Result<Rc<ShardContext>> {
        let log_defaults = config.log_config()?;
        Ok(Rc::new(ShardContext {
            id,
            shards,
            log_defaults,
            clock: Rc::new(SystemClock),
            peers,
            meta,
            snapshot: RefCell::new(Arc::new(Snapshot::default())),
            partitions: RefCell::new(HashMap::new()),
            shutting_down: Cell::new(false),
            snapshot_ready: Default::default(),
            groups: Coordinator::new(
                Duration::from_millis(config.server.group_initial_rebalance_delay_ms),
                Duration::from_secs(config.server.offsets_retention_minutes * 60),
            ),
            config,
        }))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    pub fn log(&self, topic: &str, partition: i32) -> Option<Rc<Log>> {
        self.partitions
            .borrow()
            .get(topic)
            .and_then(|m| m.get(&partition))
            .cloned()
    }

    pub fn local_partitions(&self) -> Vec<Rc<Log>> {
        self.partitions
            .borrow()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    async fn send_to(&self, shard: usize, msg: ShardMsg) {
        let peer = self.peers[shard].as_ref().expect("no channel to self");
        if peer.send(msg).await.is_err() {
            warn!(shard = self.id, to = shard, "peer shard channel closed");
        }
    }

    /// Sends a message built around a reply channel to `shard` and waits for the answer;
    /// `None` if the shard dropped the reply (shutting down).
    async fn ask<T>(
        &self,
        shard: usize,
        msg: impl FnOnce(oneshot::Sender<T>) -> ShardMsg,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send_to(shard, msg(tx)).await;
        rx.await.ok()
    }

    /// The same for the metadata service.
    pub async fn ask_meta<T>(&self, msg: impl FnOnce(oneshot::Sender<T>) -> MetaMsg) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.meta(msg(tx)).await;
        rx.await.ok()
    }

    async fn meta(&self, msg: MetaMsg) {
        if self.meta.send(msg).await.is_err() {
            warn!(shard = self.id, "metadata service channel closed");
        }
    }

    // ---- consumer groups: each lives on the home shard of its offsets partition ----

    fn offsets_partitions(&self) -> i32 {
        self.snapshot()
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partitions)
            .unwrap_or(self.config.server.offsets_topic_partitions)
    }

    pub fn group_shard(&self, group: &str) -> usize {
        shard_for(
            OFFSETS_TOPIC,
            offsets_partition(group, self.offsets_partitions()),
            self.shards,
        )
    }

    pub async fn forward_group_request(
        &self,
        shard: usize,
        req: RawRequest,
    ) -> Result<Outcome, RequestError> {
        let (api, version, corr) = (req.api_key, req.api_version, req.correlation_id);
        let answer = self
            .ask(shard, |reply| ShardMsg::GroupRequest { req, reply })
            .await;
        answer.unwrap_or(Err(RequestError::Malformed {
            api,
            version,
            reason: "group shard unavailable".into(),
            correlation_id: corr,
        }))
    }

    /// Appends group records to this shard's `__consumer_offsets` partition for `group`,
    /// waits until durable, then applies them. Returns a Kafka error code.
    pub async fn append_group_records(&self, group: &str, records: GroupRecords) -> i16 {
        let p = offsets_partition(group, self.offsets_partitions());
        let Some(log) = self.log(OFFSETS_TOPIC, p) else {
            return crate::group::coordinator::codes::COORDINATOR_NOT_AVAILABLE;
        };
        let batch = build_batch(&records, self.clock.now_ms());
        log.wait_for_space().await;
        let result = match log.append(&batch, COMMIT_ACKS) {
            Ok(mut o) => o.wait().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                for (k, v) in &records {
                    self.groups.apply_record(k, v.as_deref());
                }
                errors::NONE
            }
            Err(e) => {
                warn!(shard = self.id, %group, error = %e, "writing group records failed");
                log_error_code(&e)
            }
        }
    }

    pub async fn persist_group_metadata(&self, group: &str) {
        if let Some(rec) = self
            .groups
            .group_metadata_record(group, self.clock.now_ms())
        {
            let _ = self.append_group_records(group, vec![rec]).await;
        }
    }

    pub async fn fetch_offsets(
        self: &Rc<Self>,
        group: String,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, i32, OffsetValue)> {
        let home = self.group_shard(&group);
        if home == self.id {
            return self.groups.fetch_offsets(&group, topics);
        }
        self.ask(home, |reply| ShardMsg::FetchOffsets {
            group,
            topics,
            reply,
        })
        .await
        .unwrap_or_default()
    }

    pub async fn describe_group(self: &Rc<Self>, group: String) -> DescribedGroup {
        let home = self.group_shard(&group);
        if home == self.id {
            return self.groups.describe(&group);
        }
        let answer = self
            .ask(home, |reply| ShardMsg::DescribeGroup { group, reply })
            .await;
        answer.unwrap_or_else(|| DescribedGroup {
            error: crate::group::coordinator::codes::COORDINATOR_NOT_AVAILABLE,
            state: "Dead",
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        })
    }

    pub async fn list_groups(self: &Rc<Self>) -> Vec<(String, String, &'static str)> {
        let mut all = self.groups.list();
        for shard in (0..self.shards).filter(|s| *s != self.id) {
            let theirs = self
                .ask(shard, |reply| ShardMsg::ListGroups { reply })
                .await;
            all.extend(theirs.unwrap_or_default());
        }
        all.sort();
        all
    }

    pub async fn delete_group(self: &Rc<Self>, group: String) -> i16 {
        let home = self.group_shard(&group);
        if home != self.id {
            return self
                .ask(home, |reply| ShardMsg::DeleteGroup { group, reply })
                .await
                .unwrap_or(crate::group::coordinator::codes::COORDINATOR_NOT_AVAILABLE);
        }
        match self.groups.delete(&group) {
            Err(code) => code,
            Ok(records) => self.append_group_records(&group, records).await,
        }
    }

    /// Rebuilds group state from a `__consumer_offsets` partition this shard just opened.
    async fn load_group_partition(&self, log: &Log) {
        let mut offset = log.log_start_offset();
        let mut records = 0usize;
        while offset < log.high_watermark() {
            let Ok(r) = log.read(offset, 1 << 20).await else {
                break;
            };
            if r.records.is_empty() {
                break;
            }
            for v in batch::iter_batches(&r.records) {
                let Ok(v) = v else { break };
                if let Ok(recs) = batch::records(&v) {
                    for rec in recs {
                        if let Some(k) = rec.key {
                            self.groups.apply_record(k, rec.value);
                            records += 1;
                        }
                    }
                }
                offset = Offset(v.last_offset().0 + 1);
            }
        }
        if records > 0 {
            info!(shard = self.id, dir = %log.dir().display(), records, "loaded consumer group state");
        }
    }

    // ---- partition operations: run here if we own the partition, else on its shard ----

    pub async fn produce(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
        records: Bytes,
        acks: i16,
    ) -> ProduceResult {
        let home = shard_for(&topic, partition, self.shards);
        if home == self.id {
            return self.local_produce(&topic, partition, records, acks).await;
        }
        let msg = |reply| ShardMsg::Produce {
            topic,
            partition,
            records,
            acks,
            reply,
        };
        self.ask(home, msg).await.unwrap_or_else(|| ProduceResult {
            error: errors::KAFKA_STORAGE_ERROR,
            base_offset: -1,
            ..Default::default()
        })
    }

    pub async fn fetch(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> FetchResult {
        let home = shard_for(&topic, partition, self.shards);
        if home == self.id {
            return self.local_fetch(&topic, partition, offset, max_bytes).await;
        }
        let msg = |reply| ShardMsg::Fetch {
            topic,
            partition,
            offset,
            max_bytes,
            reply,
        };
        self.ask(home, msg).await.unwrap_or_else(|| FetchResult {
            error: errors::KAFKA_STORAGE_ERROR,
            high_watermark: -1,
            log_start_offset: -1,
            ..Default::default()
        })
    }

    pub async fn offsets(
        self: &Rc<Self>,
        topic: String,
        partition: i32,
        timestamp: i64,
    ) -> OffsetsResult {
        let home = shard_for(&topic, partition, self.shards);
        if home == self.id {
            return self.local_offsets(&topic, partition, timestamp).await;
        }
        let msg = |reply| ShardMsg::Offsets {
            topic,
            partition,
            timestamp,
            reply,
        };
        self.ask(home, msg).await.unwrap_or(OffsetsResult {
            error: errors::KAFKA_STORAGE_ERROR,
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
            log_end_offset: -1,
        })
    }

    /// Waits (at most `timeout`) until any partition in `parts` has data past its offset.
    pub async fn wait_for_data(self: &Rc<Self>, parts: Vec<(String, i32, i64)>, timeout: Duration) {
        let mut by_shard: HashMap<usize, Vec<(String, i32, i64)>> = HashMap::new();
        for p in parts {
            by_shard
                .entry(shard_for(&p.0, p.1, self.shards))
                .or_default()
                .push(p);
        }
        let mut waits: Vec<futures_util::future::LocalBoxFuture<'_, ()>> = Vec::new();
        for (shard, parts) in by_shard {
            if shard == self.id {
                let me = self.clone();
                waits.push(Box::pin(async move { me.local_wait(parts, timeout).await }));
            } else {
                let me = self.clone();
                waits.push(Box::pin(async move {
                    let msg = |reply| ShardMsg::WaitForData {
                        parts,
                        timeout,
                        reply,
                    };
                    let _ = me.ask(shard, msg).await;
                }));
            }
        }
        if waits.is_empty() {
            glommio::timer::sleep(timeout).await;
            return;
        }
        let any = futures_util::future::select_all(waits);
        futures_lite::future::or(
            async {
                any.await;
            },
            glommio::timer::sleep(timeout + Duration::from_millis(5)),
        )
        .await;
    }

    async fn local_wait(&self, parts: Vec<(String, i32, i64)>, timeout: Duration) {
        let logs: Vec<(Rc<Log>, i64)> = parts
            .iter()
            .filter_map(|(t, p, o)| self.log(t, *p).map(|l| (l, *o)))
            .collect();
        if logs.iter().any(|(l, o)| l.high_watermark().0 > *o) || logs.is_empty() {
            if logs.is_empty() {
                glommio::timer::sleep(timeout).await;
            }
            return;
        }
        let signals: Vec<_> = logs
            .iter()
            .map(|(l, _)| Box::pin(l.data_arrived()))
            .collect();
        let any = futures_util::future::select_all(signals);
        futures_lite::future::or(
            async {
                any.await;
            },
            glommio::timer::sleep(timeout),
        )
        .await;
    }

    pub async fn local_produce(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
    ) -> ProduceResult {
        let fail = |error: i16, message: String| ProduceResult {
            error,
            message: Some(message),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
        };
        let Some(log) = self.log(topic, partition) else {
            return fail(
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("{topic}-{partition} is not hosted here"),
            );
        };
        let Some(acks) = Acks::from_kafka(acks) else {
            return fail(
                errors::INVALID_REQUIRED_ACKS,
                format!("acks={acks} is not 0, 1 or -1"),
            );
        };
        // Split the records into batches; with more than one, validate all before appending any.
        let mut batches = Vec::new();
        let mut rest: &[u8] = &records;
        while !rest.is_empty() {
            let total = match batch::peek_total_len(rest) {
                Some(Ok(t)) if t <= rest.len() => t,
                Some(Err(e)) => return fail(errors::CORRUPT_MESSAGE, e.to_string()),
                _ => return fail(errors::CORRUPT_MESSAGE, "truncated record batch".into()),
            };
            batches.push(&rest[..total]);
            rest = &rest[total..];
        }
        if batches.is_empty() {
            return fail(
                errors::CORRUPT_MESSAGE,
                "no record batch in produce request".into(),
            );
        }
        if batches.len() > 1 {
            for b in &batches {
                if let Err(e) = BatchView::parse(b) {
                    let e = sluice_storage::LogError::Batch(e);
                    return fail(log_error_code(&e), e.to_string());
                }
            }
        }
        let mut first: Option<(i64, i64, i64)> = None;
        let mut outcomes = Vec::with_capacity(batches.len());
        for b in batches {
            log.wait_for_space().await;
            match log.append(b, acks) {
                Ok(o) => {
                    first.get_or_insert((
                        o.base_offset.0,
                        o.log_append_time_ms,
                        o.log_start_offset.0,
                    ));
                    outcomes.push(o);
                }
                Err(e) => return fail(log_error_code(&e), e.to_string()),
            }
        }
        for mut o in outcomes {
            if let Err(e) = o.wait().await {
                return fail(log_error_code(&e), e.to_string());
            }
        }
        let (base_offset, log_append_time_ms, log_start_offset) =
            first.expect("at least one batch");
        ProduceResult {
            error: errors::NONE,
            message: None,
            base_offset,
            log_append_time_ms,
            log_start_offset,
        }
    }

    pub async fn local_fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> FetchResult {
        let Some(log) = self.log(topic, partition) else {
            return FetchResult {
                error: errors::UNKNOWN_TOPIC_OR_PARTITION,
                high_watermark: -1,
                log_start_offset: -1,
                records: Bytes::new(),
            };
        };
        match log.read(Offset(offset), max_bytes).await {
            Ok(r) => FetchResult {
                error: errors::NONE,
                high_watermark: r.high_watermark.0,
                log_start_offset: r.log_start_offset.0,
                records: r.records,
            },
            Err(e) => FetchResult {
                error: log_error_code(&e),
                high_watermark: log.high_watermark().0,
                log_start_offset: log.log_start_offset().0,
                records: Bytes::new(),
            },
        }
    }

    /// ListOffsets semantics: -1 latest, -2 earliest, -3 max timestamp, else by timestamp.
    pub async fn local_offsets(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> OffsetsResult {
        let Some(log) = self.log(topic, partition) else {
            return OffsetsResult {
                error: errors::UNKNOWN_TOPIC_OR_PARTITION,
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
                log_end_offset: -1,
            };
        };
        let epoch = log.leader_epoch().0;
        let leo = log.high_watermark().0;
        let ok = |offset: i64, ts: i64| OffsetsResult {
            error: errors::NONE,
            offset,
            timestamp: ts,
            leader_epoch: epoch,
            log_end_offset: leo,
        };
        match timestamp {
            -1 => ok(leo, -1),
            -2 => ok(log.log_start_offset().0, -1),
            -3 => match log.max_timestamp_offset().await {
                Ok(Some((o, t))) => ok(o.0, t),
                Ok(None) => ok(-1, -1),
                Err(e) => OffsetsResult {
                    error: log_error_code(&e),
                    offset: -1,
                    timestamp: -1,
                    leader_epoch: epoch,
                    log_end_offset: leo,
                },
            },
            ts => match log.offset_for_timestamp(ts).await {
                Ok(Some((o, t))) => ok(o.0, t),
                Ok(None) => ok(-1, -1),
                Err(e) => OffsetsResult {
                    error: log_error_code(&e),
                    offset: -1,
                    timestamp: -1,
                    leader_epoch: epoch,
                    log_end_offset: leo,
                },
            },
        }
    }

    /// Applies a metadata snapshot: opens (recovering) partitions this shard now owns,
    /// retunes configs, deletes partitions of removed topics.
    pub async fn apply_metadata(self: &Rc<Self>, snap: Arc<Snapshot>) {
        let old = self.snapshot();
        if snap.epoch <= old.epoch && old.epoch != 0 {
            return;
        }
        // Deleted (or re-created with a new id) topics.
        for (name, meta) in &old.topics {
            let gone = snap.topics.get(name).is_none_or(|t| t.id != meta.id);
            if gone {
                let removed = self.partitions.borrow_mut().remove(name);
                for (_, log) in removed.into_iter().flatten() {
                    if let Err(e) = log.delete().await {
                        warn!(shard = self.id, topic = %name, error = %e, "deleting partition folder failed");
                    }
                }
            }
        }
        for (name, meta) in &snap.topics {
            let cfg = resolve_log_config(&self.log_defaults, &meta.configs);
            for p in 0..meta.partitions {
                if shard_for(name, p, self.shards) != self.id {
                    continue;
                }
                if let Some(log) = self.log(name, p) {
                    if log.config() != cfg {
                        log.set_config(cfg.clone());
                    }
                    continue;
                }
                let dir = self.config.server.data_dir.join(format!("{name}-{p}"));
                match Log::open(
                    GlommioDisk,
                    self.clock.clone(),
                    dir,
                    cfg.clone(),
                    LeaderEpoch(0),
                )
                .await
                {
                    Ok(log) => {
                        glommio::spawn_local(log.clone().run_flusher()).detach();
                        if name == OFFSETS_TOPIC {
                            self.load_group_partition(&log).await;
                        }
                        self.partitions
                            .borrow_mut()
                            .entry(name.clone())
                            .or_default()
                            .insert(p, log);
                    }
                    Err(e) => {
                        warn!(shard = self.id, topic = %name, partition = p, error = %e, "cannot open partition")
                    }
                }
            }
        }
        *self.snapshot.borrow_mut() = snap;
        self.snapshot_ready.notify_all();
    }

    pub async fn handle_msg(self: Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Produce {
                topic,
                partition,
                records,
                acks,
                reply,
            } => {
                let r = self.local_produce(&topic, partition, records, acks).await;
                let _ = reply.send(r);
            }
            ShardMsg::Fetch {
                topic,
                partition,
                offset,
                max_bytes,
                reply,
            } => {
                let r = self.local_fetch(&topic, partition, offset, max_bytes).await;
                let _ = reply.send(r);
            }
            ShardMsg::WaitForData {
                parts,
                timeout,
                reply,
            } => {
                self.local_wait(parts, timeout).await;
                let _ = reply.send(());
            }
            ShardMsg::Offsets {
                topic,
                partition,
                timestamp,
                reply,
            } => {
                let r = self.local_offsets(&topic, partition, timestamp).await;
                let _ = reply.send(r);
            }
            ShardMsg::ApplyMetadata { snapshot, reply } => {
                self.apply_metadata(snapshot).await;
                let _ = reply.send(());
            }
            ShardMsg::GroupRequest { req, reply } => {
                let _ = reply.send(crate::handlers::handle_group_local(&self, req).await);
            }
            ShardMsg::FetchOffsets {
                group,
                topics,
                reply,
            } => {
                let _ = reply.send(self.groups.fetch_offsets(&group, topics));
            }
            ShardMsg::DescribeGroup { group, reply } => {
                let _ = reply.send(self.groups.describe(&group));
            }
            ShardMsg::ListGroups { reply } => {
                let _ = reply.send(self.groups.list());
            }
            ShardMsg::DeleteGroup { group, reply } => {
                let code = self.delete_group(group).await;
                let _ = reply.send(code);
            }
        }
    }

    /// Serves messages from one peer: each runs as its own task so a long wait does not
    /// hold up the channel.
    pub async fn serve_peer(self: Rc<Self>, rx: ConnectedReceiver<ShardMsg>) {
        while let Some(msg) = rx.recv().await {
            glommio::spawn_local(self.clone().handle_msg(msg)).detach();
        }
    }

    /// Periodic work on this shard: interval fsyncs and retention.
    pub async fn housekeeping(self: Rc<Self>) {
        let retention_every =
            Duration::from_millis(self.config.server.retention_check_interval_ms.max(1000));
        let mut last_retention = Instant::now();
        let cleaner_every = Duration::from_millis(self.config.server.cleaner_interval_ms.max(100));
        let mut last_clean = Instant::now();
        while !self.shutting_down.get() {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            self.groups.tick();
            for log in self.local_partitions() {
                let _ = log.sync_if_due().await;
            }
            if last_clean.elapsed() >= cleaner_every {
                last_clean = Instant::now();
                for log in self.local_partitions() {
                    if let Err(e) = log.compact().await {
                        warn!(shard = self.id, dir = %log.dir().display(), error = %e, "compaction failed");
                    }
                }
            }
            if last_retention.elapsed() >= retention_every {
                last_retention = Instant::now();
                for (group, records) in self.groups.expire_offsets(self.clock.now_ms()) {
                    let _ = self.append_group_records(&group, records).await;
                }
                for log in self.local_partitions() {
                    match log.enforce_retention().await {
                        Ok(0) => {}
                        Ok(n) => {
                            info!(shard = self.id, dir = %log.dir().display(), removed = n, "retention")
                        }
                        Err(e) => warn!(shard = self.id, error = %e, "retention failed"),
                    }
                }
            }
        }
    }

    pub async fn close_all(&self) {
        self.shutting_down.set(true);
        for log in self.local_partitions() {
            if let Err(e) = log.close().await {
                warn!(shard = self.id, dir = %log.dir().display(), error = %e, "closing partition failed");
            }
        }
        info!(shard = self.id, "partitions closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn partitions_spread_over_shards() {
        let mut seen = [0usize; 4];
        for p in 0..400 {
            seen[shard_for("logs", p, 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n == 100), "{seen:?}");
        assert_eq!(shard_for("x", 3, 1), 0);
    }
}
