"""Consumer groups with sarama's ConsumerGroup (the elastic/sarama fork that
Beats links; Beats' kafka input consumes through this API).

``sarama-harness group-consume`` (tests/clients/go/group.go) produces the
records, then runs 3 members in one group, lets a fourth join after a
quarter and one leave after half, with consumption paused at each step until
the group has settled.  It fails if a record is missing or corrupt, a record
below an offset the coordinator reported as committed is delivered again, a
partition is claimed by two members at once, an assignment after a change is
incomplete or unbalanced, or the final committed offsets differ from the end
offsets.  Note that sarama never sends ApiVersions: it uses the request
versions implied by ``-version``.
"""

from __future__ import annotations

import subprocess

import pytest

from helpers import create_topic
from test_sarama import HARNESS

COUNT = 100_000


def run_group(bootstrap, topic, *extra):
    if not HARNESS.exists():
        pytest.fail(f"{HARNESS} not built: run tests/install-deps.sh")
    p = subprocess.run([str(HARNESS), "group-consume", "-bootstrap", bootstrap, "-topic", topic,
                        "-count", str(COUNT), *extra],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = p.stdout.decode(errors="replace")
    print(out)
    assert p.returncode == 0, f"sarama group harness failed (exit {p.returncode}):\n{out[-8000:]}"
    assert "PHASES initial" in out
    return out


@pytest.mark.parametrize("version", ["1.0.0", "2.1.0"])
def test_sarama_consumer_group(broker, topic, version):
    create_topic(broker, topic, 6)
    out = run_group(broker, topic, "-version", version)
    assert "| join" in out and "| leave" in out


def test_sarama_consumer_group_roundrobin(broker, topic):
    create_topic(broker, topic, 6)
    run_group(broker, topic, "-version", "2.1.0", "-strategy", "roundrobin")
