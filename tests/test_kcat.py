"""kcat (librdkafka) produce/consume/metadata against the broker."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict

import pytest

from helpers import create_topic

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
HEADERS = [("test", "sluice"), ("suite", "kcat")]
NKEYS = 1000


@pytest.fixture(scope="module", autouse=True)
def need_kcat():
    if not KCAT:
        pytest.fail("kcat not found on PATH: run tests/install-deps.sh")


def run(args, input_bytes=None, timeout=300) -> subprocess.CompletedProcess:
    p = subprocess.run([KCAT, *args], input=input_bytes, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"kcat {' '.join(args)} exited {p.returncode}\n"
                             f"stderr:\n{p.stderr.decode(errors='replace')[-4000:]}")
    return p


def line_for(seq: int) -> tuple[str, str]:
    return f"k{seq % NKEYS}", f"v{seq} payload {'x' * (seq % 37)} end{seq}"


def produce(bootstrap: str, topic: str, n: int, codec: str | None = None) -> None:
    data = "".join("%s:%s\n" % line_for(i) for i in range(n)).encode()
    # one request in flight so that retries cannot reorder (not idempotent)
    args = ["-P", "-b", bootstrap, "-t", topic, "-K:", "-X", "acks=all",
            "-X", "max.in.flight.requests.per.connection=1"]
    for k, v in HEADERS:
        args += ["-H", f"{k}={v}"]
    if codec:
        args += ["-z", codec]
        # make batches big enough that compression actually matters
        args += ["-X", "linger.ms=50"]
    p = run(args, data)
    err = p.stderr.decode(errors="replace")
    assert "ERROR" not in err, f"kcat produce reported errors:\n{err[-4000:]}"


def consume_json(bootstrap: str, topic: str) -> list[dict]:
    p = run(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q"])
    out = []
    for line in p.stdout.decode().splitlines():
        line = line.strip()
        if line:
            out.append(json.loads(line))
    return out


def verify(records: list[dict], n: int, topic: str) -> dict[int, list[dict]]:
    """Every produced line exactly once, with the right key/value/headers,
    contiguous offsets from 0 and send order preserved per partition."""
    assert len(records) == n, f"consumed {len(records)} records, produced {n}"
    seen = set()
    by_part: dict[int, list[dict]] = defaultdict(list)
    key_part: dict[str, int] = {}
    expected_headers = [x for kv in HEADERS for x in kv]
    for r in records:
        assert r["topic"] == topic
        payload = r["payload"]
        assert payload.startswith("v"), f"bad payload {payload!r}"
        seq = int(payload[1:].split(" ", 1)[0])
        key, value = line_for(seq)
        assert r["key"] == key, f"offset {r['offset']}: key {r['key']!r} want {key!r}"
        assert payload == value, f"offset {r['offset']}: payload {payload!r} want {value!r}"
        assert r.get("headers") == expected_headers, \
            f"offset {r['offset']}: headers {r.get('headers')!r} want {expected_headers!r}"
        assert seq not in seen, f"seq {seq} consumed twice"
        seen.add(seq)
        p = r["partition"]
        assert key_part.setdefault(key, p) == p, f"key {key} in partitions {key_part[key]} and {p}"
        by_part[p].append(r)
    assert seen == set(range(n))
    for p, recs in by_part.items():
        offsets = [r["offset"] for r in recs]
        assert offsets == list(range(len(recs))), \
            f"partition {p}: offsets not contiguous from 0 (first bad at " \
            f"{next(i for i, o in enumerate(offsets) if o != i)})"
        seqs = [int(r["payload"][1:].split(" ", 1)[0]) for r in recs]
        bad = [i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]]
        assert not bad, f"partition {p}: send order broken at offset {bad[0]}: " \
                        f"seq {seqs[bad[0]-1]} then {seqs[bad[0]]}"
        ts = [r["ts"] for r in recs]
        assert all(t > 0 for t in ts), f"partition {p}: records without timestamps"
    return by_part


def test_kcat_100k_keyed_with_headers(broker, topic):
    n = 100_000
    create_topic(broker, topic, 4)
    produce(broker, topic, n)
    by_part = verify(consume_json(broker, topic), n, topic)
    assert len(by_part) == 4, f"1000 keys landed in partitions {sorted(by_part)} of 4"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_compression(broker, topic, codec):
    n = 5000
    # auto-created topic (Produce/Metadata for an unknown topic)
    produce(broker, topic, n, codec=codec)
    verify(consume_json(broker, topic), n, topic)


def test_kcat_format_output(broker, topic):
    """Plain-text consumer output with -f '%k %s %h'."""
    n = 50
    produce(broker, topic, n)
    p = run(["-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q",
             "-f", "%p %o %k %s %h\n"])
    lines = [ln for ln in p.stdout.decode().splitlines() if ln]
    assert len(lines) == n
    got = {}
    for ln in lines:
        part, off, key, rest = ln.split(" ", 3)
        # %s is "v<seq> payload xxx end<seq>", %h is "test=sluice,suite=kcat"
        value, hdrs = rest.rsplit(" ", 1)
        seq = int(value[1:].split(" ", 1)[0])
        assert (key, value) == line_for(seq)
        assert hdrs == "test=sluice,suite=kcat"
        got[seq] = (int(part), int(off))
    assert sorted(got) == list(range(n))


def test_kcat_metadata_lists_topic(broker, topic):
    create_topic(broker, topic, 3)
    p = run(["-L", "-b", broker, "-J"])
    md = json.loads(p.stdout)
    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert brokers, "no brokers in metadata"
    assert broker in brokers.values(), f"bootstrap {broker} not among advertised brokers {brokers}"
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, f"{topic} missing from kcat -L (has {sorted(topics)[:20]}...)"
    t = topics[topic]
    assert "error" not in t or not t["error"], t
    parts = sorted(p["partition"] for p in t["partitions"])
    assert parts == [0, 1, 2]
    for part in t["partitions"]:
        assert part["leader"] in brokers, f"partition {part['partition']} leader {part['leader']} unknown"
        assert [r["id"] for r in part["replicas"]] == [part["leader"]]
        assert [r["id"] for r in part["isrs"]] == [part["leader"]]

    # the text form users look at
    p = run(["-L", "-b", broker, "-t", topic])
    assert f'topic "{topic}" with 3 partitions' in p.stdout.decode()
