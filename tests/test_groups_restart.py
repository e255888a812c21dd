"""Committed offsets survive a broker restart (SIGTERM, same data dir).

Uses ``broker_factory``: skipped with SLUICE_BOOTSTRAP unless
SLUICE_FACTORY=kafka (then Apache Kafka is started per test).
"""

from __future__ import annotations

import uuid

from group_helpers import (INF, GroupRun, committed_offsets, high_watermarks, produce_values,
                           start_member, wait_consumed)
from helpers import create_topic, wait_for

N = 20_000
PARTS = 3


def _consume_half(b, topic, expected):
    run = GroupRun(b.bootstrap, topic, f"g-{uuid.uuid4().hex[:10]}", PARTS, expected)
    run.budget = N // 2
    m = start_member(run, "before-restart")
    wait_for(lambda: run.distinct >= N // 2 or m.failed, 90, 0.1, what="half of the records consumed")
    assert not m.failed, m.failed
    return run, m


def test_group_resumes_from_committed_offsets_after_restart(broker_factory, topic):
    """A member commits about half the records and leaves; the broker restarts;
    a new member of the same group starts exactly at the committed offsets
    and reads the rest."""
    b = broker_factory.new()
    create_topic(b.bootstrap, topic, PARTS)
    expected = produce_values(b.bootstrap, topic, N)
    highs = high_watermarks(b.bootstrap, topic, PARTS)

    run, m = _consume_half(b, topic, expected)
    m.stop()                      # every processed batch was committed synchronously
    run.check()
    before = committed_offsets(b.bootstrap, run.group, topic, PARTS)
    assert before == {p: run.committed.get(p, -1001) for p in range(PARTS)}, \
        f"broker says committed {before}, the member's acknowledged commits were {run.committed}"
    assert N // 2 <= sum(max(v, 0) for v in before.values()) < N, before
    first_run_records = set(run.delivered)

    b.stop()
    b.start()

    after = committed_offsets(b.bootstrap, run.group, topic, PARTS)
    assert after == before, f"committed offsets changed across the restart: {before} -> {after}"

    run2 = GroupRun(b.bootstrap, topic, run.group, PARTS, expected)
    run2.committed = dict(before)  # anything below these is a redelivery
    run2.budget = INF
    start_member(run2, "after-restart")
    remaining = {p: highs[p] for p in range(PARTS)}
    try:
        wait_for(lambda: sum(run2.committed.get(p, 0) for p in range(PARTS)) >= N, 120, 0.1,
                 what="the rest consumed after the restart")
    finally:
        for mm in run2.members:
            mm.stop()
    run2.check()
    for p in range(PARTS):
        start = max(before[p], 0)  # -1001: nothing committed, auto.offset.reset=earliest
        offs = sorted(o for (pp, o) in run2.delivered if pp == p)
        if start < highs[p]:
            assert offs and offs[0] == start, \
                f"partition {p}: resumed at {offs[:1]}, committed offset was {before[p]}"
        assert offs == list(range(start, remaining[p])), \
            f"partition {p}: read {len(offs)} records after restart, expected [{start},{remaining[p]})"
    assert first_run_records.isdisjoint(run2.delivered)
    assert len(first_run_records) + len(run2.delivered) == N
    assert sum(max(v, 0) for v in before.values()) == len(first_run_records)
    assert committed_offsets(b.bootstrap, run.group, topic, PARTS) == highs


def test_live_member_survives_restart(broker_factory, topic):
    """A member stays subscribed while the broker restarts under it; after the
    restart it and a second member finish the topic without any record below
    a committed offset being delivered again."""
    b = broker_factory.new()
    create_topic(b.bootstrap, topic, PARTS)
    expected = produce_values(b.bootstrap, topic, N)
    highs = high_watermarks(b.bootstrap, topic, PARTS)

    run, m = _consume_half(b, topic, expected)
    # Let the member's in-flight batch commit before pulling the broker away.
    wait_for(lambda: sum(run.committed.values()) >= run.distinct, 30, 0.1,
             what="the consumed half committed")
    before = committed_offsets(b.bootstrap, run.group, topic, PARTS)

    b.stop()
    b.start()

    assert committed_offsets(b.bootstrap, run.group, topic, PARTS) == before
    start_member(run, "joined-after-restart")
    run.budget = INF
    try:
        wait_consumed(run, highs)
    finally:
        for mm in run.members:
            mm.stop()
    print(run.stats())
    run.check()
    assert run.distinct == N
    assert committed_offsets(b.bootstrap, run.group, topic, PARTS) == highs
