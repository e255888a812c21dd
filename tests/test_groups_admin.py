"""Listing and describing consumer groups, and their lag.

A stable group of two confluent-kafka members is set up on a 4-partition
topic with a known backlog: partition p holds 50*(p+1) records and the group
has committed offset 10*(p+1), so the lag is 40*(p+1).  Then:

* the Java AdminClient (``describe-groups`` in tests/clients/java: ListGroups,
  DescribeGroups, OffsetFetch, ListOffsets) and
* the confluent-kafka AdminClient (librdkafka's ListGroups, DescribeGroups,
  OffsetFetch)

must both list the group and report it Stable with exactly these two members
(client ids), the assignment each member itself sees, the committed offsets,
and (Java) the per-partition lag.  After the members leave, the group is
Empty and its offsets are still there.

kcat 1.7 has no way to list or describe groups (``-L`` shows brokers and
topics only; ``-G`` is a balanced *consumer*, not a group browser), so kcat is
not used here.
"""

from __future__ import annotations

import json
import uuid

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, Producer, TopicPartition

from group_helpers import GroupRun, start_member
from helpers import admin, create_topic, wait_for
from test_java import harness

PARTS = 4


def end_of(p: int) -> int:
    return 50 * (p + 1)


def committed_of(p: int) -> int:
    return 10 * (p + 1)


def produce_backlog(bootstrap: str, topic: str) -> None:
    pr = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for p in range(PARTS):
        for i in range(end_of(p)):
            pr.produce(topic, value=f"p{p}-{i}".encode(), partition=p,
                       on_delivery=lambda err, msg: err and errors.append(err))
    assert pr.flush(60) == 0
    assert not errors, errors[:3]


def java_describe(bootstrap: str, group: str) -> dict:
    out = harness("describe-groups", "--bootstrap", bootstrap, "--group", group, timeout=120)
    line = next(ln for ln in out.splitlines() if ln.startswith("GROUPS_JSON "))
    return json.loads(line[len("GROUPS_JSON "):])


def test_describe_stable_group_with_backlog(broker, topic):
    create_topic(broker, topic, PARTS)
    produce_backlog(broker, topic)
    group = f"admin-{uuid.uuid4().hex[:10]}"
    run = GroupRun(broker, topic, group, PARTS)
    # auto.offset.reset=latest: the members start at the end and consume nothing;
    # the committed offsets below are set explicitly.
    members = [start_member(run, f"admin-m{i}", conf={"auto.offset.reset": "latest"})
               for i in range(2)]
    try:
        asg = run.wait_settled({}, "two members to settle")
        assert sorted(asg) == ["admin-m0", "admin-m1"], asg
        for m in members:
            mine = asg[m.name]
            if not mine:
                continue
            res = m.call(lambda c, mine=mine: c.commit(
                offsets=[TopicPartition(topic, p, committed_of(p)) for p in mine], asynchronous=False))
            assert all(tp.error is None for tp in res), res
        run.check()
        # the group must still be in the same generation (no rebalance in between)
        assert run.settled({}) == asg, f"group rebalanced: {asg} -> {run.assignment()}"

        # ---------------------------------------------------------- Java AdminClient
        d = java_describe(broker, group)
        print(json.dumps(d, indent=1))
        listed = {g["group"]: g for g in d["listed"]}
        assert group in listed, f"ListGroups did not return {group}: {sorted(listed)[:20]}"
        g = d["groups"][0]
        assert g["group"] == group
        assert g["state"].upper() == "STABLE", g["state"]
        assert g["type"].upper() == "CLASSIC", g["type"]
        assert g["assignor"] == "range", g["assignor"]   # librdkafka's first default
        by_client = {m["client_id"]: m for m in g["members"]}
        assert sorted(by_client) == ["admin-m0", "admin-m1"], g["members"]
        assert len({m["member_id"] for m in g["members"]}) == 2
        for name, parts in asg.items():
            m = by_client[name]
            assert m["member_id"], m
            got = sorted(tp["partition"] for tp in m["assignment"] if tp["topic"] == topic)
            assert got == parts, f"{name}: broker says {got}, the member has {parts}"
            assert all(tp["topic"] == topic for tp in m["assignment"]), m
        offs = {o["partition"]: o for o in g["offsets"] if o["topic"] == topic}
        assert sorted(offs) == list(range(PARTS)), g["offsets"]
        for p in range(PARTS):
            assert offs[p]["committed"] == committed_of(p), offs[p]
            assert offs[p]["end"] == end_of(p), offs[p]
            assert offs[p]["lag"] == end_of(p) - committed_of(p), offs[p]

        # ------------------------------------------------- confluent-kafka AdminClient
        a = admin(broker)
        lres = a.list_consumer_groups(request_timeout=30).result(60)
        ids = {x.group_id: x for x in lres.valid}
        assert group in ids, f"list_consumer_groups did not return {group} (errors {lres.errors})"
        assert ids[group].state == ConsumerGroupState.STABLE, ids[group].state
        desc = a.describe_consumer_groups([group], request_timeout=30)[group].result(60)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert not desc.is_simple_consumer_group
        cm = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
              for m in desc.members}
        assert cm == asg, f"describe_consumer_groups members {cm}, members see {asg}"
        offres = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                               request_timeout=30)[group].result(60)
        got = {tp.partition: tp.offset for tp in offres.topic_partitions if tp.topic == topic}
        assert got == {p: committed_of(p) for p in range(PARTS)}, got
    finally:
        for m in members:
            m.stop()

    # ------------------------------------------------------------ after everyone left
    def empty():
        d = java_describe(broker, group)
        g = d["groups"][0]
        return d if g["state"].upper() == "EMPTY" else None

    d = wait_for(empty, 60, 1.0, what=f"group {group} to become Empty")
    g = d["groups"][0]
    assert g["members"] == [], g
    offs = {o["partition"]: o for o in g["offsets"] if o["topic"] == topic}
    assert {p: (o["committed"], o["lag"]) for p, o in offs.items()} == \
        {p: (committed_of(p), end_of(p) - committed_of(p)) for p in range(PARTS)}, g["offsets"]
