"""Consumer groups with confluent-kafka (librdkafka 2.16): subscribe(),
manual synchronous commits, members joining and leaving under load.

See tests/group_helpers.py for the bookkeeping and the invariants checked
on every record and every rebalance callback.
"""

from __future__ import annotations

import uuid

from group_helpers import (INF, GroupRun, assert_balanced, committed_offsets, high_watermarks,
                           produce_values, start_member, wait_consumed)
from helpers import create_topic

N = 200_000
PARTS = 6


def test_group_join_leave_under_load(broker, topic):
    """200k records in 6 partitions; three members, a fourth joins, one leaves.

    * every record is consumed, with the value that was produced at its offset;
    * no record below an offset the broker acknowledged as committed is ever
      delivered again (redelivery only of the uncommitted tail at a rebalance);
    * a partition is never assigned to a member while another still owns it;
    * after each rebalance every partition is owned exactly once and the
      members' partition counts differ by at most one;
    * at the end the broker returns the high watermarks as committed offsets.
    """
    create_topic(broker, topic, PARTS)
    expected = produce_values(broker, topic, N)
    highs = high_watermarks(broker, topic, PARTS)
    assert sum(highs.values()) == N, f"high watermarks {highs} do not add up to {N}"
    assert min(highs.values()) > 0, f"some partition got no records: {highs}"

    run = GroupRun(broker, topic, f"g-{uuid.uuid4().hex[:10]}", PARTS, expected)
    try:
        # Phase 1: three members; consumption stops at N/4 until the next phase.
        run.budget = N // 4
        marks = run.marks()
        members = [start_member(run, f"c{i}") for i in range(3)]
        a1 = run.wait_settled(marks, "three members to settle")
        assert_balanced(a1, PARTS, "3 members")
        assert len(a1) == 3, a1

        # Phase 2: a fourth member joins while the others consume.
        marks = run.marks()
        members.append(start_member(run, "c3"))
        run.budget = N // 2
        a2 = run.wait_settled(marks, "four members to settle")
        assert_balanced(a2, PARTS, "4 members")
        assert len(a2) == 4, a2

        # Phase 3: c1 leaves (close() sends LeaveGroup) while the others consume.
        marks = run.marks()
        run.budget = 3 * N // 4
        members[1].stop()
        a3 = run.wait_settled(marks, "three members after c1 left")
        assert_balanced(a3, PARTS, "3 members after a leave")
        assert "c1" not in a3 and len(a3) == 3, a3

        # Drain.
        run.budget = INF
        wait_consumed(run, highs)
        run.check()
    finally:
        for m in run.members:
            m.stopping.set()
        for m in run.members:
            m.join(60)
    print(f"assignments: {a1} -> {a2} -> {a3}; {run.stats()}")
    run.check()
    assert run.distinct == N
    got = committed_offsets(broker, run.group, topic, PARTS)
    assert got == highs, f"committed offsets {got}, high watermarks {highs}"
