"""confluent-kafka (librdkafka) producer/consumer/admin against the broker.

No consumer groups: the consumer uses assign() with explicit offsets.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, TIMESTAMP_CREATE_TIME, Consumer,
                             KafkaError, Producer, TopicPartition)

from conftest import unique_topic
from helpers import create_topic

PARTITIONS = 6
COUNT = 30_000


@dataclass
class Sent:
    seq: int
    key: bytes
    value: bytes
    ts: int
    partition: int = -1
    offset: int = -1


def make_consumer(bootstrap: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        # librdkafka insists on a group.id, but we never subscribe or commit.
        "group.id": f"unused-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": True,
    }
    conf.update(extra)
    return Consumer(conf)


def produce_all(bootstrap: str, topic: str, count: int, base_ts: int) -> list[Sent]:
    errors = []
    sent = [Sent(i, f"key-{i % 211}".encode(), f"value-{i}-{'y' * (i % 61)}".encode(),
                 base_ts + i) for i in range(count)]

    def on_delivery(err, msg, s):
        if err is not None:
            errors.append((s.seq, err))
            return
        s.partition, s.offset = msg.partition(), msg.offset()

    # Without idempotence, librdkafka only keeps send order across retries
    # with one request in flight (Kafka itself answers NOT_LEADER_OR_FOLLOWER
    # for a moment after CreateTopics, which triggers retries).
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": False,
                  "max.in.flight.requests.per.connection": 1})
    for s in sent:
        while True:
            try:
                p.produce(topic, key=s.key, value=s.value, timestamp=s.ts,
                          headers=[("seq", str(s.seq).encode())],
                          on_delivery=lambda err, msg, s=s: on_delivery(err, msg, s))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(120)
    assert remaining == 0, f"{remaining} messages still undelivered after flush"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert all(s.partition >= 0 and s.offset >= 0 for s in sent)
    return sent


@pytest.fixture(scope="module")
def produced(broker):
    topic = unique_topic("confluent")
    create_topic(broker, topic, PARTITIONS)
    base_ts = int(time.time() * 1000) - 10 * 60 * 1000
    sent = produce_all(broker, topic, COUNT, base_ts)
    by_part: dict[int, list[Sent]] = defaultdict(list)
    for s in sent:
        by_part[s.partition].append(s)
    for p in by_part:
        by_part[p].sort(key=lambda s: s.offset)
    return topic, sent, by_part, base_ts


def test_producer_acks_all_offsets(produced):
    topic, sent, by_part, _ = produced
    assert set(by_part) <= set(range(PARTITIONS))
    assert len(by_part) == PARTITIONS, f"211 keys used only partitions {sorted(by_part)}"
    key_part = {}
    for s in sent:
        assert key_part.setdefault(s.key, s.partition) == s.partition, f"key {s.key} split"
    for p, lst in by_part.items():
        assert [s.offset for s in lst] == list(range(len(lst))), \
            f"partition {p}: acked offsets are not 0..{len(lst) - 1}"
        seqs = [s.seq for s in lst]
        assert seqs == sorted(seqs), f"partition {p}: offsets do not follow send order"


def test_assign_consume_everything(broker, produced):
    topic, sent, by_part, _ = produced
    c = make_consumer(broker)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        got: dict[int, list] = defaultdict(list)
        eof = set()
        deadline = time.monotonic() + 180
        while len(eof) < PARTITIONS or sum(map(len, got.values())) < COUNT:
            assert time.monotonic() < deadline, \
                f"gave up: {sum(map(len, got.values()))}/{COUNT} consumed, eof {sorted(eof)}"
            for m in c.consume(1000, 1.0):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        if len(got[m.partition()]) == len(by_part.get(m.partition(), [])):
                            eof.add(m.partition())
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                got[m.partition()].append(m)
    finally:
        c.close()
    assert sum(map(len, got.values())) == COUNT
    for p in range(PARTITIONS):
        want = by_part.get(p, [])
        msgs = got.get(p, [])
        assert len(msgs) == len(want), f"partition {p}: got {len(msgs)} want {len(want)}"
        for m, s in zip(msgs, want):
            assert m.offset() == s.offset, f"partition {p}: offset {m.offset()} want {s.offset}"
            assert m.key() == s.key and m.value() == s.value, f"p{p}@{m.offset()}: content differs"
            assert m.headers() == [("seq", str(s.seq).encode())], f"p{p}@{m.offset()}: {m.headers()}"
            assert m.timestamp() == (TIMESTAMP_CREATE_TIME, s.ts), \
                f"p{p}@{m.offset()}: timestamp {m.timestamp()} want {(TIMESTAMP_CREATE_TIME, s.ts)}"


def test_assign_from_middle_offset(broker, produced):
    topic, _, by_part, _ = produced
    p = max(by_part, key=lambda k: len(by_part[k]))
    mid = len(by_part[p]) // 2
    c = make_consumer(broker)
    try:
        c.assign([TopicPartition(topic, p, mid)])
        m = None
        deadline = time.monotonic() + 60
        while m is None:
            assert time.monotonic() < deadline, "no message from middle offset"
            m = c.poll(1.0)
            if m is not None and m.error():
                raise AssertionError(f"consumer error: {m.error()}")
        assert m.offset() == mid
        assert m.value() == by_part[p][mid].value
    finally:
        c.close()


def test_watermark_offsets(broker, produced):
    topic, _, by_part, _ = produced
    c = make_consumer(broker)
    try:
        for p in range(PARTITIONS):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            assert (low, high) == (0, len(by_part.get(p, []))), f"partition {p}"
    finally:
        c.close()


def test_offsets_for_times(broker, produced):
    topic, _, by_part, base_ts = produced
    c = make_consumer(broker)
    try:
        queries = []
        expect = []
        for p in range(PARTITIONS):
            lst = by_part[p]
            mid = lst[len(lst) // 2]
            nxt = lst[len(lst) // 2 + 1]
            cases = [
                (base_ts - 60_000, 0),                 # before everything -> first offset
                (lst[0].ts, 0),                        # exactly the first timestamp
                (mid.ts, mid.offset),                  # exact match
                (mid.ts + 1, nxt.offset),              # between two records -> next one
                (lst[-1].ts, lst[-1].offset),          # the last record
                (lst[-1].ts + 1, -1),                  # after everything -> no offset
            ]
            for ts, off in cases:
                queries.append(TopicPartition(topic, p, ts))
                expect.append((p, ts, off))
        # one request per query so that duplicates per partition are fine
        for q, (p, ts, off) in zip(queries, expect):
            [r] = c.offsets_for_times([q], timeout=10)
            assert r.error is None, f"partition {p} ts {ts}: {r.error}"
            want = OFFSET_END if off == -1 else off
            assert r.offset == want, f"partition {p}, timestamp {ts}: offset {r.offset}, want {want}"
    finally:
        c.close()


def test_empty_topic_offsets(broker):
    """An empty created topic has watermarks (0, 0)."""
    topic = unique_topic("confluent-empty")
    create_topic(broker, topic, 2)
    c = make_consumer(broker)
    try:
        for p in range(2):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) == (0, 0)
        [r] = c.offsets_for_times([TopicPartition(topic, 0, 12345)], timeout=10)
        assert r.offset == OFFSET_END
    finally:
        c.close()
