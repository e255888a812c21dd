"""kafka-python (3.x) admin client and a producer/consumer round trip.

kafka-python 3.x returns plain dicts from the admin calls (not response
objects); see KafkaAdminClient's docstrings.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from helpers import wait_for


@pytest.fixture
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker, client_id="sluice-tests",
                         request_timeout_ms=30000)
    yield a
    a.close()


def partition_count(a: KafkaAdminClient, topic: str) -> int:
    [d] = a.describe_topics([topic])
    assert d["error_code"] == 0, d
    return len(d["partitions"])


def topic_config(a: KafkaAdminClient, topic: str, key: str, config_filter="all") -> dict | None:
    res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                             config_filter=config_filter)
    return res["topic"][topic].get(key)


def create(a: KafkaAdminClient, topic: str, partitions: int, configs: dict | None = None):
    r = a.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1,
                                 "configs": configs or {}}}, timeout_ms=30000)
    [t] = r["topics"]
    assert t["name"] == topic and t["error_code"] == 0, t
    wait_for(lambda: topic in a.list_topics(), 30, what=f"{topic} in list_topics")
    wait_for(lambda: partition_count(a, topic) == partitions, 30,
             what=f"{topic} with {partitions} partitions")
    return t


@pytest.mark.parametrize("incremental", [None, False], ids=["alter-default", "alter-legacy"])
def test_admin_topic_lifecycle(admin, topic, incremental):
    # --- create with a config
    t = create(admin, topic, 3, {"retention.ms": "3600000"})
    assert t["num_partitions"] in (3, -1)

    # --- list / describe
    assert topic in admin.list_topics()
    [d] = admin.describe_topics([topic])
    assert d["name"] == topic and d["is_internal"] is False
    parts = sorted(p["partition_index"] for p in d["partitions"])
    assert parts == [0, 1, 2]
    for p in d["partitions"]:
        assert p["error_code"] == 0 and p["leader_id"] >= 0, p
        assert p["replica_nodes"] == [p["leader_id"]] and p["isr_nodes"] == [p["leader_id"]], p

    # --- describe_configs shows the value we set, as a topic override
    cfg = topic_config(admin, topic, "retention.ms", config_filter="modified")
    assert cfg is not None, "retention.ms missing from describe_configs(modified)"
    assert cfg["value"] == "3600000"
    assert cfg["config_source"] == "DYNAMIC_TOPIC_CONFIG", cfg
    # and a default shows up when asking for everything
    cleanup = topic_config(admin, topic, "cleanup.policy")
    assert cleanup is not None and cleanup["value"] == "delete", cleanup

    # --- alter_configs changes it
    res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                              configs={"retention.ms": "7200000"})],
                              incremental=incremental)
    err = res["topic"][topic]
    assert not err or getattr(err, "errno", 0) == 0, f"alter_configs: {err!r}"
    wait_for(lambda: (topic_config(admin, topic, "retention.ms") or {}).get("value") == "7200000",
             30, what="retention.ms=7200000 in describe_configs")

    # --- create_partitions 3 -> 5
    admin.create_partitions({topic: 5}, timeout_ms=30000)
    wait_for(lambda: partition_count(admin, topic) == 5, 30, what="5 partitions")
    [d] = admin.describe_topics([topic])
    assert sorted(p["partition_index"] for p in d["partitions"]) == [0, 1, 2, 3, 4]
    # the config survived
    assert topic_config(admin, topic, "retention.ms")["value"] == "7200000"

    # --- delete
    admin.delete_topics([topic], timeout_ms=30000)
    wait_for(lambda: topic not in admin.list_topics(), 60, what=f"{topic} gone from list_topics")


def test_create_existing_topic_fails(admin, topic):
    create(admin, topic, 1)
    r = admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}},
                            raise_errors=False)
    [t] = r["topics"]
    assert t["error_code"] == 36, f"expected TOPIC_ALREADY_EXISTS (36), got {t}"
    admin.delete_topics([topic])


def test_producer_consumer_round_trip(broker, admin, topic):
    n = 3000
    create(admin, topic, 3)
    prod = KafkaProducer(bootstrap_servers=broker, acks="all", compression_type="gzip",
                         linger_ms=5, retries=3, max_in_flight_requests_per_connection=1)
    futures = []
    for i in range(n):
        futures.append(prod.send(topic, key=f"k{i % 17}".encode(), value=f"msg-{i}".encode(),
                                 headers=[("i", str(i).encode())]))
    prod.flush(60)
    acked = defaultdict(list)
    for i, f in enumerate(futures):
        md = f.get(timeout=60)
        acked[md.partition].append((md.offset, i))
    prod.close()
    assert set(acked) <= {0, 1, 2}
    for p, lst in acked.items():
        offs = [o for o, _ in lst]
        assert offs == list(range(len(lst))), f"partition {p}: acked offsets not 0..n-1"

    cons = KafkaConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", consumer_timeout_ms=1000)
    tps = [TopicPartition(topic, p) for p in range(3)]
    cons.assign(tps)
    cons.seek_to_beginning(*tps)
    got = defaultdict(list)
    deadline = time.monotonic() + 120
    while sum(map(len, got.values())) < n:
        assert time.monotonic() < deadline, f"consumed {sum(map(len, got.values()))}/{n}"
        for tp, recs in cons.poll(timeout_ms=1000).items():
            got[tp.partition].extend(recs)
    end = cons.end_offsets(tps)
    begin = cons.beginning_offsets(tps)
    cons.close()

    for p in range(3):
        want = acked.get(p, [])
        recs = got.get(p, [])
        assert [(r.offset, int(r.value[4:])) for r in recs] == want, f"partition {p} differs"
        for r in recs:
            i = int(r.value[4:])
            assert r.key == f"k{i % 17}".encode()
            assert list(r.headers) == [("i", str(i).encode())]
        assert begin[TopicPartition(topic, p)] == 0
        assert end[TopicPartition(topic, p)] == len(want)
