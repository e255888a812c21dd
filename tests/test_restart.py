"""Broker restarts (SIGTERM and kill -9) with the same data directory.

Uses the ``broker_factory`` fixture, so these are skipped when
SLUICE_BOOTSTRAP points at an external broker (unless SLUICE_FACTORY=kafka).
"""

from __future__ import annotations

import signal

from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource

from helpers import admin, consume_all, create_topic, produce_confluent, topic_partitions, wait_for

N = 10_000
PARTS = 3


def records(start: int, n: int):
    return [(f"k{i % 31}".encode(), f"restart-value-{i}".encode()) for i in range(start, start + n)]


def expected_by_partition(recs, acks):
    by = {p: [] for p in range(PARTS)}
    for (k, v), (p, off) in zip(recs, acks):
        by[p].append((off, k, v))
    for p in by:
        by[p].sort()
    return by


def clean_exit(b, rc):
    if b.kind == "kafka":  # the JVM exits 143 after running its shutdown hooks
        assert rc in (0, 143, -signal.SIGTERM), f"exit status {rc}"
    else:
        assert rc == 0, f"sluice exited with status {rc} after SIGTERM (want 0)"


def check_log(bootstrap, topic, want):
    got = consume_all(bootstrap, topic, PARTS)
    for p in range(PARTS):
        assert got[p] == want[p], (f"partition {p}: {len(got[p])} records after restart, "
                                   f"expected {len(want[p])}; first difference at "
                                   f"{next((i for i, (a, b) in enumerate(zip(got[p], want[p])) if a != b), min(len(got[p]), len(want[p])))}")


def test_sigterm_restart_keeps_everything(broker_factory, topic):
    b = broker_factory.new()
    create_topic(b.bootstrap, topic, PARTS)
    recs = records(0, N)
    acks = produce_confluent(b.bootstrap, topic, recs)
    want = expected_by_partition(recs, acks)

    clean_exit(b, b.stop())
    b.start()

    assert topic_partitions(b.bootstrap, topic) == PARTS
    check_log(b.bootstrap, topic, want)

    # appends continue after the old end of each partition
    more = records(N, 1000)
    acks2 = produce_confluent(b.bootstrap, topic, more)
    for (p, off) in acks2:
        assert off >= len(want[p]), f"partition {p}: new record at offset {off} overwrote old data"
    want2 = expected_by_partition(recs + more, acks + acks2)
    check_log(b.bootstrap, topic, want2)

    # and once more, after a second restart
    clean_exit(b, b.stop())
    b.start()
    check_log(b.bootstrap, topic, want2)


def test_kill9_keeps_acked_records(broker_factory, topic):
    b = broker_factory.new()
    create_topic(b.bootstrap, topic, PARTS)
    recs = records(0, N)
    acks = produce_confluent(b.bootstrap, topic, recs)
    want = expected_by_partition(recs, acks)

    b.kill()
    b.start()

    check_log(b.bootstrap, topic, want)
    more = records(N, 500)
    acks2 = produce_confluent(b.bootstrap, topic, more)
    check_log(b.bootstrap, topic, expected_by_partition(recs + more, acks + acks2))


def test_topic_metadata_survives_restart(broker_factory, topic):
    b = broker_factory.new()
    kept, deleted = topic + "-kept", topic + "-deleted"
    create_topic(b.bootstrap, kept, 2, {"retention.ms": "4242000"})
    create_topic(b.bootstrap, deleted, 1)
    a = admin(b.bootstrap)
    a.delete_topics([deleted], operation_timeout=30)[deleted].result(60)
    wait_for(lambda: topic_partitions(b.bootstrap, deleted) == 0, 60, what=f"{deleted} deleted")

    clean_exit(b, b.stop())
    b.start()

    a = admin(b.bootstrap)  # keep a reference: futures die with the client
    md = a.list_topics(timeout=10)
    assert kept in md.topics and len(md.topics[kept].partitions) == 2
    assert deleted not in md.topics, f"deleted topic {deleted} came back after restart"
    res = a.describe_configs([ConfigResource("TOPIC", kept)])
    cfg = list(res.values())[0].result(30)
    assert cfg["retention.ms"].value == "4242000"
