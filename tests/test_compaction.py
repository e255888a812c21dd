"""Log compaction over TCP: a keyed topic with overwrites and tombstones compacts to the
latest value per key, offsets never move, and __consumer_offsets stays small over a long
commit loop."""

import os
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from helpers import consume_all, create_topic, produce_confluent, wait_for

pytestmark = pytest.mark.skipif(os.environ.get("SLUICE_BOOTSTRAP") is not None,
                                reason="starts its own Sluice with a fast cleaner")


@pytest.fixture
def fast_cleaner(broker_factory, tmp_path):
    cfg = tmp_path / "sluice.toml"
    cfg.write_text("[server]\ncleaner_interval_ms = 300\noffsets_topic_partitions = 4\n"
                   "offsets_topic_segment_bytes = 20000\n")
    return broker_factory.new(extra_args=["--config", str(cfg)])


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.log"))


def test_keyed_topic_compacts_to_latest_value_per_key(fast_cleaner, topic):
    b = fast_cleaner.bootstrap
    create_topic(b, topic, 1, {"cleanup.policy": "compact", "segment.bytes": "4096",
                               "delete.retention.ms": "86400000"})
    keys = [f"key-{i:03d}".encode() for i in range(50)]
    latest = {}
    records = []
    for version in range(30):
        for k in keys:
            v = None if (version == 29 and k in keys[:10]) else f"{k.decode()}=v{version}".encode()
            records.append((k, v))
            latest[k] = v
    produce_confluent(b, topic, records, **{"compression.type": "lz4", "batch.num.messages": 50})
    total = len(records)

    def compacted():
        return len(consume_all(b, topic, 1)[0]) < total // 2

    wait_for(compacted, timeout=60, what="the cleaner to compact the topic")
    got = consume_all(b, topic, 1)[0]
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(set(offsets)), "offsets strictly increasing"
    assert offsets[-1] == total - 1, "the newest record (active segment) is untouched"
    last = {}
    for o, k, v in got:
        last[k] = v
    assert set(last) == set(keys)
    for k in keys:
        assert last[k] == latest[k], f"latest value of {k!r}"
    # Tombstones (null values) are still there: delete.retention.ms has not passed.
    assert sum(1 for k in keys[:10] if last[k] is None) == 10


def test_consumer_offsets_stays_small_over_a_long_commit_loop(fast_cleaner, topic):
    b = fast_cleaner.bootstrap
    create_topic(b, topic, 1)
    produce_confluent(b, topic, [(None, b"x")] * 10)
    c = Consumer({"bootstrap.servers": b, "group.id": "committer", "enable.auto.commit": False})
    try:
        for i in range(4000):
            c.commit(offsets=[TopicPartition(topic, 0, i % 10 + 1)], asynchronous=False)
    finally:
        c.close()
    data = fast_cleaner.data_dir
    parts = list(Path(data).glob("__consumer_offsets-*"))
    assert parts, "offsets topic folders exist"

    def small():
        return sum(dir_bytes(p) for p in parts) < 150_000

    # 4000 commits are ~400 KB of records; compaction keeps ~1 per segment.
    wait_for(small, timeout=60, what="__consumer_offsets to be compacted")
    # And the committed offset survives compaction and a restart.
    fast_cleaner.restart()
    c = Consumer({"bootstrap.servers": fast_cleaner.bootstrap, "group.id": "committer"})
    try:
        [tp] = c.committed([TopicPartition(topic, 0)], timeout=20)
        assert tp.offset == 4000 % 10 or tp.offset == (3999 % 10) + 1
    finally:
        c.close()
