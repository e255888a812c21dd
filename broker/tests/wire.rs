//! Over-TCP tests against the real binary: bad input, idempotent retries across restarts,
//! and kill -9 recovery. Client-library compatibility lives in tests/ (pytest, real clients).

mod support;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use sluice_protocol::batch::BatchBuilder;
use std::io::Write;
use std::time::Duration;
use support::{batches, sb, Broker, Client};

fn create_topic(c: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut t = CreatableTopic::default();
    t.name = TopicName(sb(name));
    t.num_partitions = partitions;
    t.replication_factor = 1;
    for (k, v) in configs {
        let mut cfg = CreatableTopicConfig::default();
        cfg.name = sb(k);
        cfg.value = Some(sb(v));
        t.configs.push(cfg);
    }
    let mut req = CreateTopicsRequest::default();
    req.topics.push(t);
    req.timeout_ms = 10_000;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &req);
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

fn produce_req(topic: &str, partition: i32, records: Vec<u8>, acks: i16) -> ProduceRequest {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(Bytes::from(records));
    let mut t = TopicProduceData::default();
    t.name = TopicName(sb(topic));
    t.partition_data.push(p);
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 10_000;
    req.topic_data.push(t);
    req
}

/// Returns (error code, base offset).
fn produce(c: &mut Client, topic: &str, partition: i32, records: Vec<u8>) -> (i16, i64) {
    let resp: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        &produce_req(topic, partition, records, -1),
    );
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_all(c: &mut Client, topic: &str, partition: i32) -> Vec<(i64, i32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let mut fp = FetchPartition::default();
        fp.partition = partition;
        fp.fetch_offset = offset;
        fp.partition_max_bytes = 1 << 20;
        let mut ft = FetchTopic::default();
        ft.topic = TopicName(sb(topic));
        ft.partitions.push(fp);
        let mut req = FetchRequest::default();
        req.replica_id = BrokerId(-1);
        req.max_wait_ms = 0;
        req.min_bytes = 0;
        req.max_bytes = 4 << 20;
        req.topics.push(ft);
        let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req);
        let pd = &resp.responses[0].partitions[0];
        assert_eq!(pd.error_code, 0);
        let got = batches(pd.records.clone().unwrap_or_default());
        if got.is_empty() {
            return out;
        }
        for b in got {
            offset = b.0 + b.1 as i64;
            out.push(b);
        }
    }
}

fn batch_of(values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for v in values {
        b.push(None, Some(v.as_bytes()), 0);
    }
    b.build()
}

fn api_versions_ok(addr: &str) {
    let mut c = Client::connect(addr);
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
}

#[test]
fn bad_input_gets_an_error_or_a_closed_connection_and_nothing_else_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("data"), &[]);
    let addr = broker.addr();
    let mut admin = Client::connect(&addr);
    create_topic(&mut admin, "bad", 1, &[("max.message.bytes", "10000")]);
    assert_eq!(produce(&mut admin, "bad", 0, batch_of(&["good-1"])), (0, 0));

    let raw_cases: Vec<(&str, Vec<u8>)> = vec![
        ("2 GiB length prefix", 0x7fff_ffffu32.to_be_bytes().to_vec()),
        ("negative length", (-7i32).to_be_bytes().to_vec()),
        (
            "unknown api key",
            [
                &12i32.to_be_bytes()[..],
                &[0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0],
            ]
            .concat(),
        ),
        (
            "produce v99",
            [
                &12i32.to_be_bytes()[..],
                &[0, 0, 0, 99, 0, 0, 0, 1, 0xff, 0xff, 0, 0],
            ]
            .concat(),
        ),
        (
            "metadata claiming 2^31 topics",
            [
                &14i32.to_be_bytes()[..],
                &[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
            ]
            .concat(),
        ),
        (
            "short header",
            [&3i32.to_be_bytes()[..], &[0, 3, 0]].concat(),
        ),
    ];
    for (what, bytes) in raw_cases {
        let mut c = Client::connect(&addr);
        c.stream.write_all(&bytes).unwrap();
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "{what}: connection should be closed"
        );
    }
    // Random garbage, several seeds (a tiny LCG: no extra dependency).
    let mut seed: u64 = 0x5eed;
    for _ in 0..20 {
        let mut c = Client::connect(&addr);
        let len = 1 + (seed % 300) as usize;
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        let _ = c.stream.write_all(&garbage);
        let _ = c.closed_within(Duration::from_millis(200));
    }
    // A truncated frame, then hang up.
    {
        let mut c = Client::connect(&addr);
        c.stream.write_all(&[0, 0, 0, 100, 0, 0, 0]).unwrap();
    }
    // Per-partition errors keep the connection and the log intact.
    let mut c = Client::connect(&addr);
    let mut bad_crc = batch_of(&["bad-crc"]);
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0xff;
    assert_eq!(produce(&mut c, "bad", 0, bad_crc).0, 2, "CORRUPT_MESSAGE");
    let mut magic1 = batch_of(&["old"]);
    magic1[16] = 1;
    assert_eq!(
        produce(&mut c, "bad", 0, magic1).0,
        43,
        "UNSUPPORTED_FOR_MESSAGE_FORMAT"
    );
    let big = batch_of(&[&"x".repeat(20_000)]);
    assert_eq!(produce(&mut c, "bad", 0, big).0, 10, "MESSAGE_TOO_LARGE");
    assert_eq!(
        produce(&mut c, "bad", 0, vec![1, 2, 3]).0,
        2,
        "a truncated batch is CORRUPT_MESSAGE"
    );
    assert_eq!(
        produce(&mut c, "nope-no-such-partition", 7, batch_of(&["x"])).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(produce(&mut c, "bad", 0, batch_of(&["good-2"])), (0, 1));

    assert!(broker.is_running(), "broker survived:\n{}", broker.log());
    api_versions_ok(&addr);
    let got = fetch_all(&mut c, "bad", 0);
    assert_eq!(
        got,
        vec![(0, 1, b"good-1".to_vec()), (1, 1, b"good-2".to_vec())],
        "only the valid batches are in the log"
    );
}

#[test]
fn idempotent_retry_is_caught_after_clean_restart_and_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("data"), &[]);
    let mut c = Client::connect(&broker.addr());
    create_topic(&mut c, "idem", 1, &[]);
    let init: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &{
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = None;
        r.transaction_timeout_ms = 60_000;
        r.producer_id = ProducerId(-1);
        r.producer_epoch = -1;
        r
    });
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let mk = |seq: i32, vals: &[&str]| {
        let mut b = BatchBuilder::new(1_700_000_000_000).idempotent(pid, 0, seq);
        for v in vals {
            b.push(None, Some(v.as_bytes()), 0);
        }
        b.build()
    };
    let first = mk(0, &["a", "b", "c"]);
    assert_eq!(produce(&mut c, "idem", 0, first.clone()), (0, 0));
    // Retry on the same connection: same offset.
    assert_eq!(produce(&mut c, "idem", 0, first.clone()), (0, 0));
    broker.stop();
    broker.restart();
    let mut c = Client::connect(&broker.addr());
    assert_eq!(
        produce(&mut c, "idem", 0, first.clone()),
        (0, 0),
        "retry after a clean restart"
    );
    let second = mk(3, &["d", "e"]);
    assert_eq!(produce(&mut c, "idem", 0, second.clone()), (0, 3));
    broker.kill9();
    broker.restart();
    let mut c = Client::connect(&broker.addr());
    assert_eq!(
        produce(&mut c, "idem", 0, second),
        (0, 3),
        "retry after kill -9"
    );
    assert_eq!(
        produce(&mut c, "idem", 0, mk(9, &["gap"])).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(produce(&mut c, "idem", 0, mk(5, &["f"])), (0, 5));
    let got: Vec<i64> = fetch_all(&mut c, "idem", 0).iter().map(|b| b.0).collect();
    assert_eq!(got, vec![0, 3, 5], "every batch exactly once");
}

#[test]
fn kill_9_mid_stream_keeps_every_acknowledged_message_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("data"), &[]);
    let addr = broker.addr();
    let mut c = Client::connect(&addr);
    create_topic(&mut c, "crash", 1, &[("segment.bytes", "65536")]);
    // A producer thread pipelines acks=all batches until the broker dies.
    let producer = std::thread::spawn(move || {
        let mut c = Client::connect(&addr);
        let mut acked: Vec<(i64, String)> = Vec::new();
        let mut sent = std::collections::VecDeque::new();
        for i in 0.. {
            let val = format!("m{i:07}");
            c.send(
                ApiKey::Produce,
                9,
                &produce_req("crash", 0, batch_of(&[&val, &val]), -1),
            );
            sent.push_back(val);
            if sent.len() >= 4 {
                let Some(frame) = c.read_frame() else { break };
                let (_, r) = sluice_protocol::request::decode_response::<ProduceResponse>(
                    ApiKey::Produce,
                    9,
                    frame,
                )
                .unwrap();
                let p = &r.responses[0].partition_responses[0];
                let val = sent.pop_front().unwrap();
                if p.error_code == 0 {
                    acked.push((p.base_offset, val));
                }
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(1500));
    broker.kill9();
    let acked = producer.join().unwrap();
    assert!(
        acked.len() > 50,
        "produced something before the crash ({})",
        acked.len()
    );
    broker.restart();
    let mut c = Client::connect(&broker.addr());
    let got = fetch_all(&mut c, "crash", 0);
    let mut expect_next = 0;
    for b in &got {
        assert_eq!(b.0, expect_next, "offsets contiguous, no duplicates");
        expect_next += b.1 as i64;
    }
    for (off, val) in &acked {
        let found = got
            .iter()
            .find(|b| b.0 == *off)
            .unwrap_or_else(|| panic!("acknowledged offset {off} missing"));
        assert_eq!(&found.2, val.as_bytes());
    }
    let (err, off) = produce(&mut c, "crash", 0, batch_of(&["after"]));
    assert_eq!((err, off), (0, expect_next), "the log accepts new writes");
    broker.stop();
    assert!(broker.log().contains("stopped cleanly"), "{}", broker.log());
}

#[test]
fn api_versions_answers_an_unknown_version_in_the_v0_format() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let mut c = Client::connect(&broker.addr());
    // ApiVersions v99 with a v2 header: the broker answers with a v0 body (error 35 and its
    // ranges) so a newer client can retry with a version both sides know.
    let mut frame = vec![0u8, 18, 0, 99, 0, 0, 0, 5, 0xff, 0xff, 0];
    let len = (frame.len() as i32).to_be_bytes();
    frame.splice(0..0, len);
    c.stream.write_all(&frame).unwrap();
    let body = c.read_frame().expect("an answer, not a closed connection");
    let (corr, resp) = sluice_protocol::request::decode_response::<ApiVersionsResponse>(
        ApiKey::ApiVersions,
        0,
        body,
    )
    .unwrap();
    assert_eq!(corr, 5);
    assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION");
    let av = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((av.min_version, av.max_version), (0, 4));
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
}
