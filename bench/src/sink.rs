//! `sluice-bench sink`: a Kafka endpoint that does nothing. It answers ApiVersions,
//! Metadata, CreateTopics and Produce (success, at once, nothing stored), so that a
//! produce-only workload against it measures the driver alone.
//!
//! Plain threads and blocking sockets: one thread per connection, which keeps the sink out
//! of the driver's way (it has no executor to share) and is plenty for a handful of
//! producer connections.

use anyhow::{Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use sluice_protocol::frame;
use sluice_protocol::request::{encode_response, parse_header, RawRequest};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Largest request the sink reads.
const REQUEST_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Partitions a topic gets when a Metadata request auto-creates it.
const AUTO_CREATE_PARTITIONS: i32 = 1;

/// The APIs and versions the sink answers.
const SUPPORTED: [(ApiKey, i16, i16); 4] = [
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::Produce, 3, 11),
];

/// Topic name → partitions. (Topic ids stay nil: the driver uses Metadata v9.)
type Topics = Arc<Mutex<HashMap<String, i32>>>;

pub fn serve(listen: &str) -> Result<()> {
    let listener =
        TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    eprintln!("sluice-bench sink listening on {addr} (answers ApiVersions, Metadata, CreateTopics, Produce; stores nothing)");
    let topics: Topics = Arc::default();
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let topics = topics.clone();
        let host = addr.ip().to_string();
        let port = addr.port() as i32;
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            if let Err(e) = connection(stream, &topics, &host, port) {
                eprintln!("sink: connection closed: {e:#}");
            }
        });
    }
    Ok(())
}

fn connection(mut stream: TcpStream, topics: &Topics, host: &str, port: i32) -> Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        // Answer every complete request in the buffer, then write the answers at once.
        let mut used = 0;
        while let Some(n) = frame::frame_length(&buf[used..], REQUEST_BYTES_MAX)
            .map_err(|e| anyhow::anyhow!("{e}"))?
        {
            let body = Bytes::copy_from_slice(&buf[used + frame::LENGTH_PREFIX_BYTES..used + n]);
            used += n;
            let req = parse_header(body).map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(resp) = answer(&req, topics, host, port)? {
                out.extend_from_slice(&resp);
            }
        }
        buf.drain(..used);
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn respond<T: Encodable>(req: &RawRequest, body: &T) -> Result<Option<Bytes>> {
    Ok(Some(encode_response(
        req.api_key,
        req.api_version,
        req.correlation_id,
        body,
    )?))
}

fn answer(req: &RawRequest, topics: &Topics, host: &str, port: i32) -> Result<Option<Bytes>> {
    match req.api_key {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsResponse::default();
            for (api, min, max) in SUPPORTED {
                let mut v = ApiVersion::default();
                v.api_key = api as i16;
                v.min_version = min;
                v.max_version = max;
                r.api_keys.push(v);
            }
            // An unknown (newer) version is answered at v0 with UNSUPPORTED_VERSION.
            if req.api_version > 3 {
                r.error_code = 35;
                return Ok(Some(encode_response(
                    req.api_key,
                    0,
                    req.correlation_id,
                    &r,
                )?));
            }
            respond(req, &r)
        }
        ApiKey::Metadata => {
            let m: MetadataRequest = req.decode()?;
            let mut r = MetadataResponse::default();
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(0);
            b.host = kafka_protocol::protocol::StrBytes::from_string(host.to_string());
            b.port = port;
            r.brokers.push(b);
            r.controller_id = BrokerId(0);
            let mut known = topics.lock().expect("not poisoned");
            let names: Vec<String> = match &m.topics {
                Some(ts) => ts
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                    .collect(),
                None => known.keys().cloned().collect(),
            };
            for name in names {
                let entry = if m.allow_auto_topic_creation || req.api_version < 4 {
                    Some(*known.entry(name.clone()).or_insert(AUTO_CREATE_PARTITIONS))
                } else {
                    known.get(&name).copied()
                };
                let mut t = MetadataResponseTopic::default();
                t.name = Some(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                    name,
                )));
                match entry {
                    Some(n) => {
                        for p in 0..n {
                            let mut mp = MetadataResponsePartition::default();
                            mp.partition_index = p;
                            mp.leader_id = BrokerId(0);
                            mp.replica_nodes = vec![BrokerId(0)];
                            mp.isr_nodes = vec![BrokerId(0)];
                            t.partitions.push(mp);
                        }
                    }
                    None => t.error_code = 3,
                }
                r.topics.push(t);
            }
            respond(req, &r)
        }
        ApiKey::CreateTopics => {
            let c: CreateTopicsRequest = req.decode()?;
            let mut r = CreateTopicsResponse::default();
            let mut known = topics.lock().expect("not poisoned");
            for t in &c.topics {
                let mut res = CreatableTopicResult::default();
                res.name = t.name.clone();
                let n = if t.num_partitions > 0 {
                    t.num_partitions
                } else {
                    AUTO_CREATE_PARTITIONS
                };
                match known.entry(t.name.0.to_string()) {
                    std::collections::hash_map::Entry::Occupied(_) => res.error_code = 36,
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(n);
                    }
                }
                res.num_partitions = n;
                res.replication_factor = 1;
                r.topics.push(res);
            }
            respond(req, &r)
        }
        ApiKey::Produce => {
            let p: ProduceRequest = req.decode()?;
            if p.acks == 0 {
                return Ok(None);
            }
            let mut r = ProduceResponse::default();
            for t in &p.topic_data {
                let mut tr = TopicProduceResponse::default();
                tr.name = t.name.clone();
                for pd in &t.partition_data {
                    let mut pr = PartitionProduceResponse::default();
                    pr.index = pd.index;
                    pr.base_offset = 0;
                    pr.log_append_time_ms = -1;
                    tr.partition_responses.push(pr);
                }
                r.responses.push(tr);
            }
            respond(req, &r)
        }
        other => {
            anyhow::bail!("the sink does not answer {other:?} (it serves produce-only workloads)")
        }
    }
}
