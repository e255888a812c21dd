"""Shared helpers for the Sluice integration tests (no fixtures here)."""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def wait_for(pred, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    """Poll ``pred()`` until it returns a truthy value; return that value.

    Used only to wait for eventually-consistent state (topic creation,
    deletion), never to assert on timing."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last one
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def topic_partitions(bootstrap: str, topic: str) -> int:
    """Number of partitions metadata reports for ``topic`` (0 if absent).

    Asks for all topics, so it does not trigger auto-creation."""
    md = admin(bootstrap).list_topics(timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return 0
    return len(t.partitions)


def create_topic(bootstrap: str, topic: str, partitions: int, config: dict | None = None) -> None:
    """Create ``topic`` with the confluent AdminClient and wait until metadata
    shows all its partitions with a leader."""
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                   config=config or {})], operation_timeout=30)
    try:
        fs[topic].result(60)
    except KafkaException as e:
        raise AssertionError(f"CreateTopics({topic}, {partitions}) failed: {e}") from e

    def ready():
        md = a.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        return all(p.leader >= 0 and p.error is None for p in t.partitions.values())

    wait_for(ready, 60, what=f"topic {topic} with {partitions} partitions in metadata")

    # Metadata can show a leader before the partition serves requests (Kafka
    # answers NOT_LEADER_OR_FOLLOWER for a moment); wait until ListOffsets works.
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    try:
        for p in range(partitions):
            wait_for(lambda p=p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=5,
                                                         cached=False) is not None,
                     60, what=f"ListOffsets on {topic}/{p}")
    finally:
        c.close()


def produce_confluent(bootstrap: str, topic: str, records, **conf) -> list[tuple[int, int]]:
    """Produce ``records`` (iterable of (key, value) bytes pairs) with
    acks=all; return [(partition, offset)] in input order. Fails on any
    delivery error."""
    from confluent_kafka import Producer

    results: list = []
    errors: list = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "max.in.flight.requests.per.connection": 1, **conf})
    for i, (k, v) in enumerate(records):
        results.append(None)

        def cb(err, msg, i=i):
            if err is not None:
                errors.append((i, err))
            else:
                results[i] = (msg.partition(), msg.offset())

        while True:
            try:
                p.produce(topic, key=k, value=v, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(120) == 0, "undelivered messages after flush"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert all(r is not None for r in results)
    return results


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = 120.0):
    """Read every partition from the beginning to its high watermark with
    assign() (no group). Returns {partition: [(offset, key, value), ...]}."""
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "error"})
    try:
        highs = {}
        for p in range(partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            highs[p] = hi
        out = {p: [] for p in range(partitions)}
        todo = [p for p in range(partitions) if highs[p] > 0]
        if not todo:
            return out
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        deadline = time.monotonic() + timeout
        pending = set(todo)
        while pending:
            assert time.monotonic() < deadline, f"timed out reading {topic}; still waiting on {pending}"
            for m in c.consume(1000, 1.0):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                out[m.partition()].append((m.offset(), m.key(), m.value()))
                if m.offset() + 1 >= highs[m.partition()]:
                    pending.discard(m.partition())
        return out
    finally:
        c.close()
