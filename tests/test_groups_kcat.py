"""kcat 1.7 (librdkafka 2.0.2) as a balanced consumer (``-G``): offsets are
auto-committed when kcat closes, and the next kcat in the same group resumes
exactly there.  kcat cannot list or describe groups (see test_groups_admin.py)."""

from __future__ import annotations

import subprocess
import uuid

from group_helpers import committed_offsets, high_watermarks
from helpers import create_topic, produce_confluent

N = 1000
FIRST = 300


def kcat_group(broker, group, topic, *extra) -> list[tuple[int, int, bytes]]:
    p = subprocess.run(["kcat", "-b", broker, "-G", group, "-X", "auto.offset.reset=earliest",
                        "-q", "-f", "%p %o %s\\n", *extra, topic],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, f"kcat -G exited {p.returncode}: {p.stderr.decode(errors='replace')[-3000:]}"
    out = []
    for line in p.stdout.decode().splitlines():
        part, off, val = line.split(" ", 2)
        out.append((int(part), int(off), val.encode()))
    return out


def test_kcat_group_commits_on_close_and_resumes(broker, topic):
    create_topic(broker, topic, 2)
    recs = [(f"k{i}".encode(), f"kcat-group-{i}".encode()) for i in range(N)]
    acks = produce_confluent(broker, topic, recs)
    want = {pa: v for (_, v), pa in zip(recs, acks)}
    group = f"kcat-{uuid.uuid4().hex[:10]}"

    first = kcat_group(broker, group, topic, "-c", str(FIRST))
    assert len(first) == FIRST, f"first kcat printed {len(first)} records"
    # -e: exit once every assigned partition is at its end
    second = kcat_group(broker, group, topic, "-e")

    got = [(p, o) for p, o, _ in first + second]
    dups = len(got) - len(set(got))
    assert dups == 0, f"{dups} records read by both kcat runs (the first run's commit was not honoured)"
    assert set(got) == set(want), (f"{len(set(want) - set(got))} records never read, "
                                   f"{len(set(got) - set(want))} unexpected")
    for p, o, v in first + second:
        assert want[(p, o)] == v, f"{p}@{o}: {v!r}, produced {want[(p, o)]!r}"
    # resumed exactly where the first run stopped, per partition
    for part in range(2):
        a = [o for p, o, _ in first if p == part]
        b = [o for p, o, _ in second if p == part]
        if a and b:
            assert b[0] == max(a) + 1, f"partition {part}: first run ended at {max(a)}, second began at {b[0]}"
    assert committed_offsets(broker, group, topic, 2) == high_watermarks(broker, topic, 2)
