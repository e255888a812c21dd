//! Cluster metadata: topics, their ids, partition counts and config overrides, and the
//! producer-id allocator. The [`MetadataStore`] lives on the metadata executor (its own core
//! when there is one to spare); shards hold immutable [`Snapshot`]s it broadcasts, each with
//! a higher epoch. A change is acknowledged to the client only after it is on disk and every
//! shard has applied it.

use crate::config::{validate_topic_config, TopicConfigs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Producer ids are handed out in blocks; the end of the block is persisted first, so a
/// restart never reuses an id.
const PRODUCER_ID_BLOCK: i64 = 1000;

pub const METADATA_FILE: &str = "sluice-metadata.toml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    /// UUID as 32 hex digits (Kafka topic id, needed from Fetch v13).
    pub id: String,
    pub partitions: i32,
    #[serde(default)]
    pub configs: TopicConfigs,
}

impl TopicMeta {
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::parse_str(&self.id).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct Persisted {
    cluster_id: String,
    producer_id_block_end: i64,
    #[serde(default)]
    topics: BTreeMap<String, TopicMeta>,
}

/// What every shard sees. Immutable; replaced as a whole.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub epoch: u64,
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
}

impl Snapshot {
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<(&String, &TopicMeta)> {
        self.topics.iter().find(|(_, t)| t.uuid() == id)
    }
}

/// A topic-level error with its Kafka code, produced once here.
#[derive(Debug, Clone)]
pub struct MetaError {
    pub code: i16,
    pub message: String,
}

impl MetaError {
    fn new(code: i16, message: impl Into<String>) -> Self {
        MetaError {
            code,
            message: message.into(),
        }
    }
}

pub mod codes {
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_CONFIG: i16 = 40;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
}

/// Lives on: the metadata executor.
pub struct MetadataStore {
    path: PathBuf,
    state: Persisted,
    epoch: u64,
    next_producer_id: i64,
}

/// Kafka's topic name rule: 1–249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), MetaError> {
    if name.is_empty() || name.len() > 249 || name == "." || name == ".." {
        return Err(MetaError::new(
            codes::INVALID_TOPIC_EXCEPTION,
            format!("invalid topic name {name:?}"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(MetaError::new(
            codes::INVALID_TOPIC_EXCEPTION,
            format!("topic name {name:?} has characters outside [a-zA-Z0-9._-]"),
        ));
    }
    Ok(())
}

fn unknown_topic(name: &str) -> MetaError {
    MetaError::new(
        codes::UNKNOWN_TOPIC_OR_PARTITION,
        format!("unknown topic {name:?}"),
    )
}

impl MetadataStore {
    pub fn open(data_dir: &Path) -> anyhow::Result<MetadataStore> {
        let path = data_dir.join(METADATA_FILE);
        let mut state: Persisted = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        if state.cluster_id.is_empty() {
            state.cluster_id = uuid::Uuid::new_v4().simple().to_string();
        }
        let next_producer_id = state.producer_id_block_end;
        let mut store = MetadataStore {
            path,
            state,
            epoch: 1,
            next_producer_id,
        };
        store.persist()?;
        Ok(store)
    }

    fn persist(&mut self) -> anyhow::Result<()> {
        let text = toml::to_string(&self.state)?;
        sluice_storage::disk::write_file_atomic_std(&self.path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            epoch: self.epoch,
            cluster_id: self.state.cluster_id.clone(),
            topics: self.state.topics.clone(),
        })
    }

    fn commit(&mut self) -> Result<(), MetaError> {
        self.persist()
            .map_err(|e| MetaError::new(codes::KAFKA_STORAGE_ERROR, e.to_string()))?;
        self.epoch += 1;
        Ok(())
    }

    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication: i16,
        configs: TopicConfigs,
        validate_only: bool,
    ) -> Result<(), MetaError> {
        validate_topic_name(name)?;
        if self.state.topics.contains_key(name) {
            return Err(MetaError::new(
                codes::TOPIC_ALREADY_EXISTS,
                format!("topic {name:?} already exists"),
            ));
        }
        if !(1..=100_000).contains(&partitions) {
            return Err(MetaError::new(
                codes::INVALID_PARTITIONS,
                format!("partitions must be between 1 and 100000, got {partitions}"),
            ));
        }
        if replication != -1 && replication != 1 {
            return Err(MetaError::new(
                codes::INVALID_REPLICATION_FACTOR,
                format!("replication factor {replication} is larger than the 1 available broker"),
            ));
        }
        for (k, v) in &configs {
            validate_topic_config(k, v).map_err(|m| MetaError::new(codes::INVALID_CONFIG, m))?;
        }
        if validate_only {
            return Ok(());
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.state.topics.insert(
            name.to_string(),
            TopicMeta {
                id,
                partitions,
                configs,
            },
        );
        self.commit()
    }

    /// Creates an internal topic (e.g. `__consumer_offsets`) if it does not exist yet.
    pub fn ensure_internal_topic(
        &mut self,
        name: &str,
        partitions: i32,
        segment_bytes: u64,
    ) -> anyhow::Result<()> {
        if !self.state.topics.contains_key(name) {
            let id = uuid::Uuid::new_v4().simple().to_string();
            // Compacted, as Kafka's offsets topic; smaller segments than Kafka's 100 MiB so
            // the cleaner has sealed segments to work on sooner.
            let mut configs = TopicConfigs::new();
            configs.insert("cleanup.policy".into(), "compact".into());
            configs.insert("segment.bytes".into(), segment_bytes.to_string());
            self.state.topics.insert(
                name.to_string(),
                TopicMeta {
                    id,
                    partitions,
                    configs,
                },
            );
            self.persist()?;
        }
        Ok(())
    }

    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMeta, MetaError> {
        if name.starts_with("__") {
            return Err(MetaError::new(
                codes::INVALID_TOPIC_EXCEPTION,
                format!("internal topic {name:?} cannot be deleted"),
            ));
        }
        let t = self
            .state
            .topics
            .remove(name)
            .ok_or_else(|| unknown_topic(name))?;
        self.commit()?;
        Ok(t)
    }

    pub fn create_partitions(
        &mut self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), MetaError> {
        let t = self
            .state
            .topics
            .get_mut(name)
            .ok_or_else(|| unknown_topic(name))?;
        if count <= t.partitions {
            return Err(MetaError::new(
                codes::INVALID_PARTITIONS,
                format!(
                    "topic {name:?} has {} partitions; the new count {count} must be larger",
                    t.partitions
                ),
            ));
        }
        if count > 100_000 {
            return Err(MetaError::new(
                codes::INVALID_PARTITIONS,
                "at most 100000 partitions",
            ));
        }
        if validate_only {
            return Ok(());
        }
        t.partitions = count;
        self.commit()
    }

    /// Replaces (`incremental == false`) or edits a topic's overrides. `ops` are
    /// (key, Some(value)) to set, (key, None) to delete.
    pub fn alter_configs(
        &mut self,
        name: &str,
        ops: &[(String, Option<String>)],
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), MetaError> {
        let t = self
            .state
            .topics
            .get(name)
            .ok_or_else(|| unknown_topic(name))?;
        let mut configs = if incremental {
            t.configs.clone()
        } else {
            TopicConfigs::new()
        };
        for (k, v) in ops {
            match v {
                Some(v) => {
                    validate_topic_config(k, v)
                        .map_err(|m| MetaError::new(codes::INVALID_CONFIG, m))?;
                    configs.insert(k.clone(), v.clone());
                }
                None => {
                    configs.remove(k);
                }
            }
        }
        if validate_only {
            return Ok(());
        }
        self.state.topics.get_mut(name).expect("checked").configs = configs;
        self.commit()
    }

    pub fn allocate_producer_id(&mut self) -> Result<i64, MetaError> {
        if self.next_producer_id >= self.state.producer_id_block_end {
            self.state.producer_id_block_end += PRODUCER_ID_BLOCK;
            self.persist()
                .map_err(|e| MetaError::new(codes::KAFKA_STORAGE_ERROR, e.to_string()))?;
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MetadataStore::open(dir.path()).unwrap();
        s.create_topic("a.b-c_d", 3, 1, TopicConfigs::new(), false)
            .unwrap();
        assert_eq!(
            s.create_topic("a.b-c_d", 3, 1, TopicConfigs::new(), false)
                .unwrap_err()
                .code,
            codes::TOPIC_ALREADY_EXISTS
        );
        assert_eq!(
            s.create_topic("bad/name", 1, 1, TopicConfigs::new(), false)
                .unwrap_err()
                .code,
            codes::INVALID_TOPIC_EXCEPTION
        );
        let p1 = s.allocate_producer_id().unwrap();
        let cluster = s.snapshot().cluster_id.clone();
        drop(s);
        let mut s = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(s.snapshot().topics["a.b-c_d"].partitions, 3);
        assert_eq!(s.snapshot().cluster_id, cluster);
        assert!(
            s.allocate_producer_id().unwrap() > p1,
            "producer ids never reused"
        );
    }
}
