//! The Kafka client pieces the driver needs, on `sluice-protocol`: the API versions it
//! speaks, a fast RecordBatch v2 writer, and a small blocking admin client (ApiVersions,
//! Metadata, CreateTopics, ListOffsets) used before the load starts.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_protocol::batch::write_varint;
use sluice_protocol::request::{decode_response, encode_request};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "sluice-bench";
pub const API_VERSIONS_VERSION: i16 = 3;
pub const METADATA_VERSION: i16 = 9;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const PRODUCE_VERSION: i16 = 8;
pub const FETCH_VERSION: i16 = 11;
pub const LIST_OFFSETS_VERSION: i16 = 5;
/// Largest response frame the driver accepts (a Fetch answer is bounded by its max_bytes).
pub const RESPONSE_BYTES_MAX: usize = 128 * 1024 * 1024;

/// Kafka error codes the producer retries (the broker may still be electing leaders or
/// creating a topic).
pub fn is_retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 13 | 19 | 20)
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Appends records to an uncompressed RecordBatch v2 without allocating per record (the
/// protocol crate's `BatchBuilder` allocates one Vec per record; this writes in place).
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: i32,
    base_timestamp_ms: i64,
    max_ts_delta_ms: i64,
    scratch: Vec<u8>,
}

const HEADER_BYTES: usize = 61;
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

impl BatchWriter {
    pub fn new(base_timestamp_ms: i64, capacity_bytes: usize) -> BatchWriter {
        let mut buf = Vec::with_capacity(HEADER_BYTES + capacity_bytes);
        buf.resize(HEADER_BYTES, 0);
        BatchWriter {
            buf,
            count: 0,
            base_timestamp_ms,
            max_ts_delta_ms: 0,
            scratch: Vec::with_capacity(16),
        }
    }

    pub fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp_ms: i64) {
        let ts_delta = timestamp_ms - self.base_timestamp_ms;
        let s = &mut self.scratch;
        s.clear();
        s.push(0); // attributes
        write_varint(s, ts_delta);
        write_varint(s, self.count as i64);
        match key {
            Some(k) => write_varint(s, k.len() as i64),
            None => write_varint(s, -1),
        }
        let head = s.len();
        let key_len = key.map_or(0, |k| k.len());
        let mut vlen = Vec::with_capacity(5);
        write_varint(&mut vlen, value.len() as i64);
        let body_len = head + key_len + vlen.len() + value.len() + 1;
        write_varint(&mut self.buf, body_len as i64);
        self.buf.extend_from_slice(&self.scratch);
        if let Some(k) = key {
            self.buf.extend_from_slice(k);
        }
        self.buf.extend_from_slice(&vlen);
        self.buf.extend_from_slice(value);
        self.buf.push(0); // no headers
        self.count += 1;
        self.max_ts_delta_ms = self.max_ts_delta_ms.max(ts_delta);
    }

    /// Bytes the batch will occupy on the wire.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.count > 0, "a batch needs at least one record");
        let b = &mut self.buf;
        let batch_len = (b.len() - 12) as i32;
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[8..12].copy_from_slice(&batch_len.to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        b[16] = 2;
        b[21..23].copy_from_slice(&0i16.to_be_bytes());
        b[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        b[35..43].copy_from_slice(&(self.base_timestamp_ms + self.max_ts_delta_ms).to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&b[CRC_FROM..]);
        b[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

/// Blocking request/response client for setup calls (one request in flight).
pub struct AdminClient {
    stream: TcpStream,
    addr: String,
    correlation_id: i32,
}

impl AdminClient {
    pub fn connect(addr: &str) -> Result<AdminClient> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve target {addr}"))?
            .next()
            .with_context(|| format!("target {addr} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
            .with_context(|| format!("cannot connect to target {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        Ok(AdminClient {
            stream,
            addr: addr.to_string(),
            correlation_id: 0,
        })
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp> {
        self.correlation_id += 1;
        let frame = encode_request(api, version, self.correlation_id, CLIENT_ID, req)?;
        let ctx = || format!("{api:?} v{version} to {}", self.addr);
        self.stream.write_all(&frame).with_context(ctx)?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .with_context(|| format!("{}: no answer (connection closed?)", ctx()))?;
        let n = i32::from_be_bytes(len);
        if n < 0 || n as usize > RESPONSE_BYTES_MAX {
            bail!("{}: bad response length {n}", ctx());
        }
        let mut body = vec![0u8; n as usize];
        self.stream.read_exact(&mut body).with_context(ctx)?;
        let (corr, resp) = decode_response::<Resp>(api, version, Bytes::from(body))?;
        if corr != self.correlation_id {
            bail!(
                "{}: correlation id {corr}, expected {}",
                ctx(),
                self.correlation_id
            );
        }
        Ok(resp)
    }

    /// Checks that the target speaks every API version the driver uses.
    pub fn check_versions(&mut self, need_fetch: bool) -> Result<()> {
        // v3 requires a client software name and version matching [a-zA-Z0-9.-]+ (Kafka
        // answers INVALID_REQUEST otherwise).
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = sb(CLIENT_ID);
        req.client_software_version = sb(env!("CARGO_PKG_VERSION"));
        let resp: ApiVersionsResponse = self
            .call(ApiKey::ApiVersions, API_VERSIONS_VERSION, &req)
            .with_context(|| {
                format!(
                    "{} does not answer ApiVersions: is it a Kafka endpoint?",
                    self.addr
                )
            })?;
        if resp.error_code != 0 {
            bail!(
                "{} answered ApiVersions with error {}",
                self.addr,
                resp.error_code
            );
        }
        let mut need = vec![
            (ApiKey::Metadata, METADATA_VERSION),
            (ApiKey::Produce, PRODUCE_VERSION),
        ];
        if need_fetch {
            need.push((ApiKey::Fetch, FETCH_VERSION));
            need.push((ApiKey::ListOffsets, LIST_OFFSETS_VERSION));
        }
        for (api, v) in need {
            let ok = resp
                .api_keys
                .iter()
                .any(|k| k.api_key == api as i16 && k.min_version <= v && v <= k.max_version);
            if !ok {
                bail!(
                    "{} does not support {api:?} v{v}, which sluice-bench uses",
                    self.addr
                );
            }
        }
        Ok(())
    }

    /// Creates the topics (an existing one is fine). Falls back to auto-creation through
    /// Metadata when CreateTopics is refused, then waits until every partition has a leader.
    pub fn create_topics(
        &mut self,
        names: &[String],
        partitions: u32,
        wait: Duration,
    ) -> Result<()> {
        let mut req = CreateTopicsRequest::default();
        req.timeout_ms = 30_000;
        for n in names {
            let mut t = CreatableTopic::default();
            t.name = TopicName(sb(n));
            t.num_partitions = partitions as i32;
            t.replication_factor = 1;
            req.topics.push(t);
        }
        let created = match self.call::<_, CreateTopicsResponse>(
            ApiKey::CreateTopics,
            CREATE_TOPICS_VERSION,
            &req,
        ) {
            Ok(resp) => match resp
                .topics
                .iter()
                .find(|t| t.error_code != 0 && t.error_code != 36)
            {
                None => true,
                Some(t) => {
                    eprintln!(
                        "CreateTopics refused ({}: {}); relying on auto-creation",
                        t.error_code,
                        t.error_message.as_deref().unwrap_or("")
                    );
                    false
                }
            },
            Err(e) => {
                eprintln!("CreateTopics failed ({e:#}); relying on auto-creation");
                // The broker may have closed the connection on an unknown API.
                *self = AdminClient::connect(&self.addr)?;
                false
            }
        };
        let deadline = Instant::now() + wait;
        loop {
            let ready = self.topics_ready(names, partitions, !created)?;
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: topics were not ready (every partition with a leader) within {} s",
                    self.addr,
                    wait.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn topics_ready(
        &mut self,
        names: &[String],
        partitions: u32,
        auto_create: bool,
    ) -> Result<bool> {
        let mut req = MetadataRequest::default();
        req.allow_auto_topic_creation = auto_create;
        req.topics = Some(
            names
                .iter()
                .map(|n| {
                    let mut t = MetadataRequestTopic::default();
                    t.name = Some(TopicName(sb(n)));
                    t
                })
                .collect(),
        );
        let resp: MetadataResponse = self.call(ApiKey::Metadata, METADATA_VERSION, &req)?;
        if resp.brokers.len() > 1 {
            eprintln!(
                "note: the cluster has {} brokers; sluice-bench sends everything to the bootstrap address",
                resp.brokers.len()
            );
        }
        Ok(resp.topics.len() == names.len()
            && resp.topics.iter().all(|t| {
                t.error_code == 0
                    && t.partitions.len() as u32 >= partitions
                    && t.partitions
                        .iter()
                        .all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
            }))
    }

    /// Start offset per (topic, partition): timestamp -2 = earliest, -1 = latest. Retries
    /// while leadership is still settling (Kafka answers NOT_LEADER_OR_FOLLOWER for a moment
    /// after creating a topic, even once Metadata shows a leader).
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: u32,
        timestamp: i64,
    ) -> Result<Vec<i64>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(offsets) = self.list_offsets_once(topic, partitions, timestamp)? {
                return Ok(offsets);
            }
            if Instant::now() > deadline {
                bail!("ListOffsets {topic}: partitions still without a leader after 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn list_offsets_once(
        &mut self,
        topic: &str,
        partitions: u32,
        timestamp: i64,
    ) -> Result<Option<Vec<i64>>> {
        let mut t = ListOffsetsTopic::default();
        t.name = TopicName(sb(topic));
        for p in 0..partitions as i32 {
            let mut lp = ListOffsetsPartition::default();
            lp.partition_index = p;
            lp.timestamp = timestamp;
            lp.current_leader_epoch = -1;
            t.partitions.push(lp);
        }
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        req.topics.push(t);
        let resp: ListOffsetsResponse =
            self.call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &req)?;
        let mut out = vec![0i64; partitions as usize];
        for t in &resp.topics {
            for p in &t.partitions {
                if is_retriable(p.error_code) {
                    return Ok(None);
                }
                if p.error_code != 0 {
                    bail!(
                        "ListOffsets {topic}-{}: error {}",
                        p.partition_index,
                        p.error_code
                    );
                }
                if let Some(slot) = out.get_mut(p.partition_index as usize) {
                    *slot = p.offset;
                }
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::batch::{records, BatchBuilder, BatchView};

    #[test]
    fn batch_writer_matches_the_protocol_builder_byte_for_byte() {
        let base = 1_700_000_000_000;
        let mut ours = BatchWriter::new(base, 1024);
        let mut theirs = BatchBuilder::new(base);
        for i in 0..50i64 {
            let key = format!("k{i}");
            let value = vec![i as u8; (i * 13 % 200) as usize];
            let key = (i % 3 != 0).then_some(key.as_bytes());
            ours.push(key, &value, base + i);
            theirs.push(key, Some(&value), i);
        }
        let a = ours.finish();
        assert_eq!(a, theirs.build());
        let v = BatchView::parse(&a).unwrap();
        v.verify_crc().unwrap();
        assert_eq!(records(&v).unwrap().len(), 50);
    }
}
