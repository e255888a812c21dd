//! Workload files: TOML in OpenMessaging Benchmark vocabulary (snake_case), validated once at
//! load time so that a bad file is a one-line error naming the key, never a panic mid-run.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Upper bound on what one harness process can be asked to generate. A rate above it is a
/// typo (or a unit mix-up), not a benchmark.
pub const PRODUCER_RATE_MAX_MSGS_PER_S: f64 = 50_000_000.0;
/// Upper bound on offered load in bytes per second (10 GiB/s is past any loopback socket).
pub const PRODUCER_RATE_MAX_BYTES_PER_S: f64 = 10.0 * 1024.0 * 1024.0 * 1024.0;
/// Every message carries its intended send time (µs since the Unix epoch, big-endian) in
/// its first 8 bytes, for end-to-end latency.
pub const TIMESTAMP_BYTES: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default = "one")]
    pub topics: u32,
    pub partitions_per_topic: u32,
    /// Producers per topic (OMB `producersPerTopic`).
    #[serde(default = "one", alias = "producers")]
    pub producers_per_topic: u32,
    /// Independent readers of every topic (OMB `subscriptionsPerTopic`); 0 = produce only.
    #[serde(default = "one", alias = "subscriptions")]
    pub subscriptions_per_topic: u32,
    /// Consumers sharing one subscription; partitions are split between them by assignment.
    #[serde(default = "one")]
    pub consumers_per_subscription: u32,
    /// Message size in bytes (at least 8: the timestamp). Ignored when `payload_file` is set.
    #[serde(default = "default_message_size")]
    pub message_size: usize,
    /// A file whose bytes are the payload of every message (its first 8 bytes are replaced by
    /// the timestamp). Relative paths are relative to the workload file.
    #[serde(default)]
    pub payload_file: Option<String>,
    /// Total messages per second over all producers, or "max".
    pub producer_rate: Rate,
    #[serde(default)]
    pub acks: Acks,
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Kafka `batch.size`: a partition's batch is sent once it holds this many bytes.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Kafka `linger.ms`: a partition's batch is sent at the latest this long after its first
    /// message.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Kafka `max.in.flight.requests.per.connection`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    #[serde(default)]
    pub key_distribution: KeyDistribution,
    pub duration_s: u64,
    #[serde(default)]
    pub warmup_s: u64,
    /// Produce this much before consumers start, then measure the catch-up read (OMB
    /// `consumerBacklogSizeGB`, in MiB here).
    #[serde(default)]
    pub consumer_backlog_size_mb: u64,
    #[serde(default)]
    pub consume_from: ConsumeFrom,
    #[serde(default = "default_fetch_max_wait_ms")]
    pub fetch_max_wait_ms: i32,
    #[serde(default = "one_i32")]
    pub fetch_min_bytes: i32,
    /// After producers stop, how long consumers may take to read what was acknowledged.
    #[serde(default = "default_drain_timeout_s")]
    pub drain_timeout_s: u64,
}

fn one() -> u32 {
    1
}
fn one_i32() -> i32 {
    1
}
fn default_message_size() -> usize {
    100
}
fn default_compression() -> String {
    "none".into()
}
fn default_batch_size() -> usize {
    16 * 1024
}
fn default_linger_ms() -> u64 {
    1
}
fn default_max_in_flight() -> u32 {
    5
}
fn default_fetch_max_wait_ms() -> i32 {
    500
}
fn default_drain_timeout_s() -> u64 {
    30
}

/// `producer_rate`: a number of messages per second, or the word "max".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Max,
    Fixed(f64),
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::Max => s.serialize_str("max"),
            Rate::Fixed(r) => s.serialize_f64(*r),
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("producer_rate must be messages per second or \"max\"")
        })? {
            Raw::N(r) => Ok(Rate::Fixed(r)),
            Raw::S(s) if s == "max" => Ok(Rate::Max),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "producer_rate must be messages per second or \"max\", not {s:?}"
            ))),
        }
    }
}

/// `acks`: 0, 1, -1 or "all".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acks(pub i16);

impl Default for Acks {
    fn default() -> Self {
        Acks(-1)
    }
}

impl Serialize for Acks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == -1 {
            s.serialize_str("all")
        } else {
            s.serialize_i16(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Acks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        let bad = || serde::de::Error::custom("acks must be 0, 1, -1 or \"all\"");
        match Raw::deserialize(d).map_err(|_| bad())? {
            Raw::N(n @ -1..=1) => Ok(Acks(n as i16)),
            Raw::S(s) if s == "all" => Ok(Acks(-1)),
            _ => Err(bad()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDistribution {
    /// No key; sticky partitioning (fill one partition's batch, then move on), as Kafka's
    /// default partitioner does.
    #[default]
    None,
    /// Key = a per-producer counter; partition = counter mod partitions.
    RoundRobin,
    /// Key = a random 64-bit number; partition = key mod partitions.
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumeFrom {
    #[default]
    Earliest,
    Latest,
}

impl Workload {
    /// Reads, parses and validates a workload file; returns it with its payload.
    pub fn load(path: &Path) -> Result<(Workload, Vec<u8>)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read workload {}", path.display()))?;
        let w = Workload::parse(&text)
            .map_err(|e| anyhow::anyhow!("workload {}: {e}", path.display()))?;
        let payload = w
            .payload(path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| anyhow::anyhow!("workload {}: {e}", path.display()))?;
        Ok((w, payload))
    }

    pub fn parse(text: &str) -> Result<Workload> {
        let w: Workload = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines (it quotes the source); keep the first.
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_string();
            anyhow::anyhow!("{msg}")
        })?;
        w.validate()?;
        Ok(w)
    }

    fn payload(&self, base: &Path) -> Result<Vec<u8>> {
        let mut payload = match &self.payload_file {
            Some(f) => {
                let p = base.join(f);
                std::fs::read(&p)
                    .with_context(|| format!("payload_file {} cannot be read", p.display()))?
            }
            None => (0..self.message_size)
                .map(|i| b'a' + (i % 26) as u8)
                .collect(),
        };
        if payload.len() < TIMESTAMP_BYTES {
            bail!(
                "messages must be at least {TIMESTAMP_BYTES} bytes (they carry a timestamp), got {}",
                payload.len()
            );
        }
        payload[..TIMESTAMP_BYTES].fill(0);
        Ok(payload)
    }

    pub fn validate(&self) -> Result<()> {
        if self.topics == 0 || self.partitions_per_topic == 0 {
            bail!("topics and partitions_per_topic must be at least 1");
        }
        if self.producers_per_topic == 0 {
            bail!("producers_per_topic must be at least 1");
        }
        if self.subscriptions_per_topic > 0 && self.consumers_per_subscription == 0 {
            bail!("consumers_per_subscription must be at least 1 when there are subscriptions");
        }
        if self.consumers_per_subscription > self.partitions_per_topic
            && self.subscriptions_per_topic > 0
        {
            bail!(
                "consumers_per_subscription ({}) exceeds partitions_per_topic ({}): some consumers would have nothing to read",
                self.consumers_per_subscription,
                self.partitions_per_topic
            );
        }
        if self.payload_file.is_none() && self.message_size < TIMESTAMP_BYTES {
            bail!("message_size must be at least {TIMESTAMP_BYTES} bytes (each message carries its send timestamp)");
        }
        if self.compression != "none" {
            bail!(
                "compression {:?} is not supported yet (only \"none\")",
                self.compression
            );
        }
        if self.batch_size == 0 || self.batch_size > 16 * 1024 * 1024 {
            bail!("batch_size must be between 1 and 16777216 bytes");
        }
        if self.max_in_flight == 0 || self.max_in_flight > 1024 {
            bail!("max_in_flight must be between 1 and 1024");
        }
        if self.duration_s == 0 {
            bail!("duration_s must be at least 1");
        }
        if let Rate::Fixed(r) = self.producer_rate {
            let size = self.message_size as f64;
            if !r.is_finite() || r <= 0.0 {
                bail!("producer_rate {r} is impossible: it must be positive (or \"max\")");
            }
            if r > PRODUCER_RATE_MAX_MSGS_PER_S {
                bail!("producer_rate {r} msg/s is impossible for one harness (limit {PRODUCER_RATE_MAX_MSGS_PER_S} msg/s)");
            }
            if r * size > PRODUCER_RATE_MAX_BYTES_PER_S {
                bail!(
                    "producer_rate {r} msg/s x message_size {} B = {:.1} GiB/s is impossible (limit 10 GiB/s)",
                    self.message_size,
                    r * size / (1024.0 * 1024.0 * 1024.0)
                );
            }
        }
        Ok(())
    }

    pub fn producers(&self) -> u32 {
        self.topics * self.producers_per_topic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "name = \"t\"\npartitions_per_topic = 4\nproducer_rate = 1000\nduration_s = 5\n";

    #[test]
    fn defaults_and_words() {
        let w = Workload::parse(&format!(
            "{BASE}acks = \"all\"\nkey_distribution = \"round-robin\""
        ))
        .unwrap();
        assert_eq!(w.acks, Acks(-1));
        assert_eq!(w.producer_rate, Rate::Fixed(1000.0));
        assert_eq!(w.key_distribution, KeyDistribution::RoundRobin);
        let w = Workload::parse(&BASE.replace("1000", "\"max\"")).unwrap();
        assert_eq!(w.producer_rate, Rate::Max);
    }

    #[test]
    fn unknown_key_is_named_on_one_line() {
        let e = Workload::parse(&format!("{BASE}partitons = 3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("partitons"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn impossible_rates_are_refused() {
        for bad in ["0", "-5", "1e12", "\"fast\""] {
            let e = Workload::parse(&BASE.replace("1000", bad));
            assert!(e.is_err(), "{bad}");
        }
        let e = Workload::parse(&format!("{BASE}message_size = 4"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("message_size"), "{e}");
    }
}
