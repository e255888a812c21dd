"""Filebeat's Kafka client: the elastic/sarama fork, configured like libbeat's
kafka output (tests/clients/go/main.go)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import create_topic

HARNESS = Path(__file__).resolve().parent / "clients" / "go" / "sarama-harness"
COUNT = 20_000


def run_harness(bootstrap: str, topic: str, version: str, compression: str = "gzip",
                count: int = COUNT) -> str:
    if not HARNESS.exists():
        pytest.fail(f"{HARNESS} not built: run tests/install-deps.sh "
                    f"(or `cd tests/clients/go && go build -o sarama-harness .`)")
    p = subprocess.run([str(HARNESS), "produce-consume", "-bootstrap", bootstrap,
                        "-topic", topic, "-count", str(count), "-version", version,
                        "-compression", compression],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = p.stdout.decode(errors="replace")
    print(out)
    assert p.returncode == 0, f"sarama harness failed (exit {p.returncode}):\n{out[-6000:]}"
    assert "verified all" in out
    return out


@pytest.mark.parametrize("version", ["1.0.0", "2.1.0"])
def test_sarama_filebeat_precreated_topic(broker, topic, version):
    create_topic(broker, topic, 4)
    out = run_harness(broker, topic, version)
    assert "producer used 4 of them" in out


@pytest.mark.parametrize("version", ["1.0.0", "2.1.0"])
def test_sarama_filebeat_autocreated_topic(broker, topic, version):
    """Filebeat normally relies on topic auto-creation."""
    run_harness(broker, topic, version)


@pytest.mark.parametrize("compression", ["none", "snappy", "lz4"])
def test_sarama_other_codecs(broker, topic, compression):
    create_topic(broker, topic, 2)
    run_harness(broker, topic, "2.1.0", compression=compression, count=5000)
