//! Broker configuration: a TOML file whose every key has a default, so none is needed.
//! Unknown keys and bad values are errors that name the key.
//!
//! Topic-level settings use Kafka's names (`retention.ms`, ...) and resolve against the
//! `[log]` defaults; see [`TopicConfigs`].

use anyhow::{bail, Context};
use serde::Deserialize;
use sluice_storage::{FlushPolicy, LogConfig, TimestampType};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub log: LogDefaults,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address every shard accepts Kafka connections on (SO_REUSEPORT).
    pub listen: String,
    /// Address given to clients in Metadata; defaults to `listen`.
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    pub node_id: i32,
    /// Number of shards (one executor each); 0 = one per available core.
    pub shards: usize,
    /// Cores to pin shards to, in order; empty = 0..shards.
    pub cores: Vec<usize>,
    /// Core for the metadata service; default: a core of its own when one is left over,
    /// else unpinned.
    pub metadata_core: Option<usize>,
    /// io_uring registered-buffer memory per executor, in KiB (counts against `ulimit -l`).
    pub io_memory_kib: usize,
    /// Largest request frame accepted, checked before allocating (`socket.request.max.bytes`).
    pub socket_request_max_bytes: usize,
    /// Requests read ahead per connection while earlier ones are in progress.
    pub connection_inflight_max: usize,
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics (`num.partitions`).
    pub default_partitions: i32,
    /// Milliseconds between retention passes (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// Partitions of `__consumer_offsets` (`offsets.topic.num.partitions`); fixed once created.
    pub offsets_topic_partitions: i32,
    /// A new group waits this long for more members before its first generation
    /// (`group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Committed offsets of empty groups are kept this long (`offsets.retention.minutes`).
    pub offsets_retention_minutes: u64,
    /// KIP-848 groups: how often members heartbeat, and when a silent one is removed
    /// (`group.consumer.heartbeat.interval.ms`, `group.consumer.session.timeout.ms`).
    pub consumer_group_heartbeat_interval_ms: u64,
    pub consumer_group_session_timeout_ms: u64,
    /// `segment.bytes` of `__consumer_offsets` when it is created.
    pub offsets_topic_segment_bytes: u64,
    /// Pause between log-cleaner passes over compacted partitions (`log.cleaner.backoff.ms`).
    pub cleaner_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogDefaults {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    pub index_interval_bytes: u64,
    /// "batch" (fsync each drained batch; acks=all waits for it), "interval", or "os".
    pub flush: String,
    pub flush_interval_ms: u64,
    /// "CreateTime" or "LogAppendTime".
    pub message_timestamp_type: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:9092".into(),
            advertise: None,
            data_dir: PathBuf::from("./sluice-data"),
            node_id: 0,
            shards: 0,
            cores: Vec::new(),
            metadata_core: None,
            io_memory_kib: 512,
            socket_request_max_bytes: 100 * 1024 * 1024,
            connection_inflight_max: 16,
            auto_create_topics: true,
            default_partitions: 1,
            retention_check_interval_ms: 300_000,
            offsets_topic_partitions: 50,
            group_initial_rebalance_delay_ms: 3000,
            offsets_retention_minutes: 7 * 24 * 60,
            cleaner_interval_ms: 15_000,
            offsets_topic_segment_bytes: 16 << 20,
            consumer_group_heartbeat_interval_ms: 5000,
            consumer_group_session_timeout_ms: 45_000,
        }
    }
}

impl Default for LogDefaults {
    fn default() -> Self {
        let d = LogConfig::default();
        LogDefaults {
            segment_bytes: d.segment_bytes,
            segment_ms: d.segment_ms,
            retention_ms: d.retention_ms,
            retention_bytes: d.retention_bytes,
            max_message_bytes: d.max_message_bytes,
            index_interval_bytes: d.index_interval_bytes,
            flush: "batch".into(),
            flush_interval_ms: 1000,
            message_timestamp_type: "CreateTime".into(),
        }
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let cfg: Config = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("config file {}: {}", p.display(), e.to_string().trim_end())
                })?
            }
        };
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.server.listen.parse::<SocketAddr>().map_err(|e| {
            anyhow::anyhow!(
                "server.listen: {:?} is not HOST:PORT ({e})",
                self.server.listen
            )
        })?;
        if let Some(a) = &self.server.advertise {
            parse_host_port(a)
                .with_context(|| format!("server.advertise: {a:?} is not HOST:PORT"))?;
        }
        if self.server.default_partitions < 1 {
            bail!(
                "server.default_partitions: must be at least 1, got {}",
                self.server.default_partitions
            );
        }
        if self.server.socket_request_max_bytes < 1024 {
            bail!(
                "server.socket_request_max_bytes: must be at least 1024, got {}",
                self.server.socket_request_max_bytes
            );
        }
        if !(1..=1000).contains(&self.server.offsets_topic_partitions) {
            bail!(
                "server.offsets_topic_partitions: must be between 1 and 1000, got {}",
                self.server.offsets_topic_partitions
            );
        }
        if self.server.connection_inflight_max == 0 {
            bail!("server.connection_inflight_max: must be at least 1");
        }
        if self.log.segment_bytes < 1024 {
            bail!(
                "log.segment_bytes: must be at least 1024, got {}",
                self.log.segment_bytes
            );
        }
        self.log_config().context("in [log]")?;
        Ok(())
    }

    /// The advertised (host, port) for Metadata responses.
    pub fn advertised(&self) -> (String, i32) {
        let a = self
            .server
            .advertise
            .clone()
            .unwrap_or_else(|| self.server.listen.clone());
        parse_host_port(&a).unwrap_or_else(|_| ("127.0.0.1".into(), 9092))
    }

    /// The broker-wide defaults every topic starts from.
    pub fn log_config(&self) -> anyhow::Result<LogConfig> {
        let l = &self.log;
        let flush = match l.flush.as_str() {
            "batch" => FlushPolicy::EveryBatch,
            "interval" => FlushPolicy::IntervalMs(l.flush_interval_ms),
            "os" => FlushPolicy::Os,
            other => bail!("log.flush: {other:?} is not one of \"batch\", \"interval\", \"os\""),
        };
        let timestamp_type = match l.message_timestamp_type.as_str() {
            "CreateTime" => TimestampType::CreateTime,
            "LogAppendTime" => TimestampType::LogAppendTime,
            other => {
                bail!("log.message_timestamp_type: {other:?} is not CreateTime or LogAppendTime")
            }
        };
        Ok(LogConfig {
            segment_bytes: l.segment_bytes,
            segment_ms: l.segment_ms,
            retention_ms: l.retention_ms,
            retention_bytes: l.retention_bytes,
            max_message_bytes: l.max_message_bytes,
            index_interval_bytes: l.index_interval_bytes,
            timestamp_type,
            flush,
            ..LogConfig::default()
        })
    }
}

pub fn parse_host_port(s: &str) -> anyhow::Result<(String, i32)> {
    let (h, p) = s.rsplit_once(':').context("missing ':'")?;
    let port: u16 = p.parse().context("bad port")?;
    if h.is_empty() {
        bail!("empty host");
    }
    Ok((
        h.trim_start_matches('[').trim_end_matches(']').to_string(),
        port as i32,
    ))
}

/// The topic-level keys Sluice understands, with Kafka's names.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "index.interval.bytes",
    "flush.messages",
    "flush.ms",
    "min.insync.replicas",
    "compression.type",
];

/// A topic's explicit overrides (only what was set; the rest comes from the broker).
pub type TopicConfigs = BTreeMap<String, String>;

/// Checks one topic-level setting; the error text names the key and the problem.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), String> {
    let int = |v: &str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| format!("{key}: {value:?} is not an integer"))
    };
    match key {
        "cleanup.policy" => match cleanup_policy(value) {
            Some(_) => Ok(()),
            None => Err(format!(
                "{key}: {value:?} is not delete, compact or compact,delete"
            )),
        },
        "delete.retention.ms" => {
            if int(value)? < 0 {
                return Err(format!("{key}: must not be negative"));
            }
            Ok(())
        }
        "retention.ms" | "retention.bytes" => {
            let v = int(value)?;
            if v < -1 {
                return Err(format!("{key}: must be -1 or more"));
            }
            Ok(())
        }
        "segment.bytes" => {
            if int(value)? < 14 {
                return Err(format!("{key}: must be at least 14"));
            }
            Ok(())
        }
        "segment.ms" | "flush.ms" | "flush.messages" | "min.insync.replicas" => {
            if int(value)? < 0 {
                return Err(format!("{key}: must not be negative"));
            }
            Ok(())
        }
        "max.message.bytes" | "index.interval.bytes" => {
            if int(value)? < 0 {
                return Err(format!("{key}: must not be negative"));
            }
            Ok(())
        }
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(format!(
                "{key}: {value:?} is not CreateTime or LogAppendTime"
            )),
        },
        "compression.type" => match value {
            "producer" => Ok(()),
            _ => Err(format!(
                "{key}: only \"producer\" (store batches as sent) is supported"
            )),
        },
        _ => Err(format!("{key}: unknown topic config")),
    }
}

/// Parses `cleanup.policy` into (compact, delete).
pub fn cleanup_policy(value: &str) -> Option<(bool, bool)> {
    let mut compact = false;
    let mut delete = false;
    for part in value.split(',').map(str::trim) {
        match part {
            "compact" => compact = true,
            "delete" => delete = true,
            _ => return None,
        }
    }
    (compact || delete).then_some((compact, delete))
}

/// Resolves a topic's overrides on top of the broker defaults.
pub fn resolve_log_config(defaults: &LogConfig, overrides: &TopicConfigs) -> LogConfig {
    let mut c = defaults.clone();
    let num = |k: &str| overrides.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    if let Some(v) = num("retention.ms") {
        c.retention_ms = v;
    }
    if let Some(v) = num("retention.bytes") {
        c.retention_bytes = v;
    }
    if let Some(v) = num("segment.bytes") {
        c.segment_bytes = v.max(14) as u64;
    }
    if let Some(v) = num("segment.ms") {
        c.segment_ms = v;
    }
    if let Some(v) = num("max.message.bytes") {
        c.max_message_bytes = v.max(0) as usize;
    }
    if let Some(v) = num("index.interval.bytes") {
        c.index_interval_bytes = v.max(0) as u64;
    }
    if let Some((compact, delete)) = overrides
        .get("cleanup.policy")
        .and_then(|v| cleanup_policy(v))
    {
        c.compact = compact;
        c.delete = delete;
    }
    if let Some(v) = num("delete.retention.ms") {
        c.delete_retention_ms = v;
    }
    if let Some(v) = overrides.get("message.timestamp.type") {
        c.timestamp_type = if v == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
    }
    // Kafka's flush.messages=1 means "fsync every batch"; flush.ms sets an interval.
    if num("flush.messages") == Some(1) {
        c.flush = FlushPolicy::EveryBatch;
    } else if let Some(ms) = num("flush.ms") {
        c.flush = FlushPolicy::IntervalMs(ms.max(0) as u64);
    }
    c
}

/// The effective value of every topic key, for DescribeConfigs: (value, is_default).
pub fn describe_topic_config(
    defaults: &LogConfig,
    overrides: &TopicConfigs,
) -> Vec<(&'static str, String, bool)> {
    let c = resolve_log_config(defaults, overrides);
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|&k| {
            let effective = match k {
                "cleanup.policy" => match (c.compact, c.delete) {
                    (true, true) => "compact,delete".to_string(),
                    (true, false) => "compact".to_string(),
                    _ => "delete".to_string(),
                },
                "delete.retention.ms" => c.delete_retention_ms.to_string(),
                "retention.ms" => c.retention_ms.to_string(),
                "retention.bytes" => c.retention_bytes.to_string(),
                "segment.bytes" => c.segment_bytes.to_string(),
                "segment.ms" => c.segment_ms.to_string(),
                "max.message.bytes" => c.max_message_bytes.to_string(),
                "message.timestamp.type" => match c.timestamp_type {
                    TimestampType::CreateTime => "CreateTime".into(),
                    TimestampType::LogAppendTime => "LogAppendTime".into(),
                },
                "index.interval.bytes" => c.index_interval_bytes.to_string(),
                "flush.messages" => match c.flush {
                    FlushPolicy::EveryBatch => "1".into(),
                    _ => i64::MAX.to_string(),
                },
                "flush.ms" => match c.flush {
                    FlushPolicy::IntervalMs(ms) => ms.to_string(),
                    FlushPolicy::EveryBatch => "0".into(),
                    FlushPolicy::Os => i64::MAX.to_string(),
                },
                "min.insync.replicas" => "1".into(),
                "compression.type" => "producer".into(),
                _ => String::new(),
            };
            match overrides.get(k) {
                Some(v) => (k, v.clone(), false),
                None => (k, effective, true),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let e = toml::from_str::<Config>("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n")
            .unwrap_err();
        assert!(e.to_string().contains("listen_port"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let mut c = Config::default();
        c.log.flush = "sometimes".into();
        let e = c.validate().unwrap_err();
        assert!(format!("{e:#}").contains("log.flush"), "{e:#}");
        let e = toml::from_str::<Config>("[log]\nretention_ms = \"forever\"\n").unwrap_err();
        assert!(e.to_string().contains("retention_ms"), "{e}");
    }

    #[test]
    fn defaults_need_no_file() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn topic_overrides_resolve() {
        let d = LogConfig::default();
        let mut o = TopicConfigs::new();
        o.insert("retention.ms".into(), "1000".into());
        o.insert("flush.messages".into(), "1".into());
        let c = resolve_log_config(&d, &o);
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.flush, FlushPolicy::EveryBatch);
        assert!(validate_topic_config("retention.ms", "abc")
            .unwrap_err()
            .contains("retention.ms"));
        assert!(validate_topic_config("nope", "1").is_err());
    }
}
