"""The Apache Kafka Java client, through the harness in tests/clients/java
(built by tests/clients/java/build.sh, called from tests/install-deps.sh).

See tests/clients/java/src/main/java/dev/sluice/harness/Harness.java for what
each subcommand checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import free_port

JAVA_DIR = Path(__file__).resolve().parent / "clients" / "java"
JAR = JAVA_DIR / "target" / "harness.jar"
COUNT = int(os.environ.get("SLUICE_JAVA_COUNT", "100000"))
IDEM_COUNT = int(os.environ.get("SLUICE_JAVA_IDEM_COUNT", "1000000"))


def harness(*args: str, timeout: int = 900) -> str:
    if not JAR.exists():
        pytest.fail(f"Java harness {JAR} is missing: run tests/install-deps.sh "
                    f"(which calls tests/clients/java/build.sh; needs Maven and Java 17)")
    java = shutil.which("java")
    if not java:
        pytest.fail("java not found on PATH (need Java 17+)")
    cmd = [java, "-Xmx1g", "-jar", str(JAR), *args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = p.stdout.decode(errors="replace")
    print(out)
    assert p.returncode == 0 and "OK " in out, (f"java harness {' '.join(args)} exited {p.returncode} "
                               f"(1 = verification failed, 3 = client/broker error):\n{out[-8000:]}")
    return out


def test_java_default_producer(broker, topic):
    """Java client defaults: idempotent producer, acks=all."""
    harness("produce-consume", "--bootstrap", broker, "--topic", topic, "--count", str(COUNT))


def test_java_acks1(broker, topic):
    harness("produce-consume", "--bootstrap", broker, "--topic", topic, "--count", str(COUNT),
            "--acks", "1")


def test_java_logstash_settings(broker, topic):
    """The Logstash kafka output's producer settings."""
    harness("produce-consume", "--bootstrap", broker, "--topic", topic, "--count", str(COUNT),
            "--acks", "1", "--logstash")


def test_java_autocreated_topic(broker, topic):
    harness("produce-consume", "--bootstrap", broker, "--topic", topic, "--count", "20000",
            "--no-create-topic")


def test_java_idempotence_through_cutting_proxy(broker_factory, topic):
    """Idempotent producer through a proxy that cuts every connection every
    200-500 ms; every record must end up in the log exactly once.  The broker
    advertises the proxy address so that all client traffic goes through it."""
    proxy_port = free_port()
    b = broker_factory.new(extra_args=["--advertise", f"127.0.0.1:{proxy_port}"])
    harness("idempotence", "--bootstrap", f"127.0.0.1:{proxy_port}", "--topic", topic,
            "--count", str(IDEM_COUNT), "--proxy-listen", f"127.0.0.1:{proxy_port}",
            "--target", b.bootstrap, timeout=1200)
