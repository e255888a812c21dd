"""Consumer groups with the Apache Kafka Java client 4.1 (what Logstash's
kafka input uses), through ``group-consume`` in tests/clients/java
(see GroupCommands.java there for every check).

Each run produces SLUICE_JAVA_GROUP_COUNT records (default 200000) into a
fresh 6-partition topic, then consumes them with members of one group in
threads (subscribe(), enable.auto.commit=false, commitSync after each poll):
3 members, +1 joins after a quarter, -1 leaves after half; consumption
pauses at each step until the group has settled, so every membership change
happens with data still to read.  The harness fails (exit 1) if a record is
missing, a record below a committed offset is delivered again, a partition is
assigned to one member while another still owns it, the assignment after a
change is incomplete or unbalanced (counts differ by more than one), or the
committed offsets at the end differ from the end offsets.
"""

from __future__ import annotations

import os

import pytest

from test_java import harness

COUNT = int(os.environ.get("SLUICE_JAVA_GROUP_COUNT", "200000"))


def group_consume(broker, topic, *extra):
    out = harness("group-consume", "--bootstrap", broker, "--topic", topic, "--count", str(COUNT),
                  "--partitions", "6", *extra, timeout=600)
    assert "OK group-consume" in out
    return out


def test_java_group_plain(broker, topic):
    """Default assignors (range first, eager rebalances)."""
    out = group_consume(broker, topic)
    assert "PHASES initial" in out and "| join" in out and "| leave" in out


def test_java_group_static_membership(broker, topic):
    """group.instance.id on every member, range assignor.  Member c0 is
    restarted with its instance id: it must get its old partitions back and
    no other member may see a revocation (KIP-345: no rebalance).  No
    --leave: a static member's close() does not send LeaveGroup, so leaving
    would only take effect after session.timeout.ms."""
    out = group_consume(broker, topic, "--group-instance-id-prefix", "logstash-0-",
                        "--assignor", "range", "--bounce", "--leave", "0")
    assert "| bounce" in out


def test_java_group_cooperative_sticky(broker, topic):
    """Incremental cooperative rebalancing (KIP-429): members keep consuming
    the partitions they keep while others move."""
    group_consume(broker, topic, "--assignor", "cooperative-sticky")


@pytest.mark.kip848
def test_java_group_kip848_consumer_protocol(broker, topic):
    """group.protocol=consumer (KIP-848: ConsumerGroupHeartbeat, server-side
    assignor).  Two members join and two leave under load; each partition is
    owned by one member at a time; nothing is lost.  Here the settle condition
    itself is "every partition owned once, counts within one", since KIP-848
    members get no callback when their assignment does not change."""
    group_consume(broker, topic, "--group-protocol", "consumer", "--join", "2", "--leave", "2")
