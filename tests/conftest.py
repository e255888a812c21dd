"""pytest fixtures for the Sluice integration suite.

The suite talks to a broker over TCP with real Kafka clients (kcat,
confluent-kafka/librdkafka, kafka-python, sarama, the Java client).

Broker selection
----------------
* ``SLUICE_BOOTSTRAP=host:port`` -- use an already running broker (for example
  Apache Kafka, to validate the suite itself).  Tests that need to start,
  stop or restart brokers are skipped in this mode unless
  ``SLUICE_FACTORY=kafka`` is also set (see below).
* otherwise the session ``broker`` fixture starts
  ``$SLUICE_BIN serve --listen 127.0.0.1:PORT --data-dir TMPDIR``
  (``SLUICE_BIN`` defaults to ``target/release/sluice`` in the repo root).

``SLUICE_FACTORY=kafka`` makes the ``broker_factory`` fixture start Apache
Kafka through ``bench/kafka/run-kafka.sh`` instead of Sluice, so the restart
and proxy tests can be validated against Kafka too.

Every broker's stdout/stderr goes to a log file; the tail of it is attached to
the report of any failing test that used that broker.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"

sys.path.insert(0, str(TESTS_DIR))

LOG_TAIL_LINES = 200


# --------------------------------------------------------------------------
# helpers


def free_port(consecutive: int = 1) -> int:
    """A TCP port on 127.0.0.1 that is free right now (and the next
    ``consecutive - 1`` ports too)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + consecutive > 65535:
            continue
        ok = True
        for extra in range(1, consecutive):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port + extra))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("could not find a free port")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_hostport(hp: str) -> tuple[str, int]:
    host, _, port = hp.rpartition(":")
    return host, int(port)


def unique_topic(prefix: str = "t") -> str:
    prefix = re.sub(r"[^a-zA-Z0-9._-]", "-", prefix)[:100]
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    text = data.decode("utf-8", "replace").splitlines()
    head = f"--- {path} (last {min(lines, len(text))} of {len(text)} lines) ---\n"
    return head + "\n".join(text[-lines:])


def sluice_bin() -> Path:
    p = Path(os.environ.get("SLUICE_BIN", "target/release/sluice"))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def external_bootstrap() -> str | None:
    return os.environ.get("SLUICE_BOOTSTRAP") or None


def factory_kind() -> str:
    return os.environ.get("SLUICE_FACTORY", "sluice")


# Logs of brokers started during the current test, attached on failure.
_ACTIVE_LOGS: list[Path] = []
_SESSION_LOGS: list[Path] = []


class BrokerProcess:
    """One broker process (Sluice, or Kafka via run-kafka.sh)."""

    def __init__(self, kind: str, data_dir: Path, log_dir: Path, port: int | None = None,
                 extra_args: list[str] | None = None, name: str = "broker"):
        self.kind = kind
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args or [])
        self.name = name
        self.port = port or free_port(2 if kind == "kafka" else 1)
        self.host = "127.0.0.1"
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path = self.log_dir / f"{name}.log"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "kafka":
            script = REPO_ROOT / "bench" / "kafka" / "run-kafka.sh"
            if not script.exists():
                pytest.fail(f"SLUICE_FACTORY=kafka but {script} does not exist")
            return [str(script), "--port", str(self.port), "--data", str(self.data_dir),
                    "--keep-data", "--partitions", "1", "--heap", "512m", *self.extra_args]
        binp = sluice_bin()
        if not binp.exists():
            pytest.fail(f"Sluice binary {binp} not found: build it with "
                        f"`cargo build --release` or point SLUICE_BIN at it")
        return [str(binp), "serve", "--listen", self.bootstrap,
                "--data-dir", str(self.data_dir), *self.extra_args]

    def start(self, timeout: float | None = None) -> "BrokerProcess":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if timeout is None:
            timeout = 180.0 if self.kind == "kafka" else 60.0
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        cmd = self.command()
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            env = dict(os.environ)
            env.setdefault("RUST_BACKTRACE", "1")
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         cwd=str(REPO_ROOT), start_new_session=True)
        if self.log_path not in _ACTIVE_LOGS:
            _ACTIVE_LOGS.append(self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(f"{self.name} exited with status {rc} during startup\n"
                            f"{tail(self.log_path, 60)}")
            if port_open(self.host, self.port):
                if self.kind == "kafka":
                    # run-kafka.sh in the foreground: wait for "started"
                    if b"Kafka Server started" not in self.log_path.read_bytes()[log_start:]:
                        time.sleep(0.2)
                        continue
                return self
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"{self.name} did not accept TCP on {self.bootstrap} within {timeout}s\n"
                    f"{tail(self.log_path, 60)}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _wait_port_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and port_open(self.host, self.port, 0.2):
            time.sleep(0.05)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM")
        self._wait_port_closed()
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9 (the process group, so wrappers die too)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._wait_port_closed()

    def restart(self, extra_args: list[str] | None = None, hard: bool = False) -> "BrokerProcess":
        if hard:
            self.kill()
        else:
            self.stop()
        if extra_args is not None:
            self.extra_args = list(extra_args)
        return self.start()


class BrokerFactory:
    def __init__(self, tmp_path_factory, kind: str):
        self.tmp_path_factory = tmp_path_factory
        self.kind = kind
        self.brokers: list[BrokerProcess] = []

    def new(self, data_dir: Path | None = None, extra_args: list[str] | None = None,
            port: int | None = None, start: bool = True) -> BrokerProcess:
        n = len(self.brokers)
        if data_dir is None:
            data_dir = self.tmp_path_factory.mktemp(f"broker{n}-data")
        log_dir = self.tmp_path_factory.mktemp(f"broker{n}-log")
        b = BrokerProcess(self.kind, data_dir, log_dir, port=port, extra_args=extra_args,
                          name=f"{self.kind}-{n}")
        self.brokers.append(b)
        if start:
            b.start()
        return b

    def close(self) -> None:
        for b in self.brokers:
            if b.running():
                try:
                    b.stop(timeout=30)
                except AssertionError:
                    pass


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> str:
    """Bootstrap "127.0.0.1:PORT" of the broker shared by the whole session."""
    ext = external_bootstrap()
    if ext:
        host, port = split_hostport(ext)
        if not port_open(host, port, 2.0):
            pytest.fail(f"SLUICE_BOOTSTRAP={ext} does not accept TCP connections")
        yield ext
        return
    b = BrokerProcess("sluice", tmp_path_factory.mktemp("session-data"),
                      tmp_path_factory.mktemp("session-log"), name="sluice-session")
    _SESSION_LOGS.append(b.log_path)
    b.start()
    try:
        yield b.bootstrap
    finally:
        rc = b.stop()
        if rc not in (0, None, -signal.SIGTERM):
            print(f"\nsession broker exited with status {rc}\n{tail(b.log_path, 80)}",
                  file=sys.stderr)


@pytest.fixture
def broker_factory(tmp_path_factory):
    """Start/stop/restart/kill -9 brokers with chosen data dirs and extra args.

    ``b = broker_factory.new(data_dir=..., extra_args=[...])`` returns a
    started :class:`BrokerProcess`; ``b.stop()``, ``b.kill()``, ``b.start()``,
    ``b.restart(hard=True)``; ``b.bootstrap``.  All are stopped at teardown.
    """
    kind = factory_kind()
    if external_bootstrap() and kind != "kafka":
        pytest.skip("needs a broker the test controls (SLUICE_BOOTSTRAP is set; "
                    "set SLUICE_FACTORY=kafka to use Apache Kafka for these)")
    f = BrokerFactory(tmp_path_factory, kind)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def topic(request) -> str:
    """A topic name unique to this test (not created)."""
    return unique_topic(request.node.name)


# --------------------------------------------------------------------------
# attach broker logs to failing tests


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _ACTIVE_LOGS.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        logs = list(dict.fromkeys(_SESSION_LOGS + _ACTIVE_LOGS))
        for p in logs:
            report.sections.append((f"broker log {p.name}", tail(p)))


def pytest_report_header(config):
    ext = external_bootstrap()
    lines = []
    if ext:
        lines.append(f"broker: external SLUICE_BOOTSTRAP={ext}")
    else:
        lines.append(f"broker: {sluice_bin()} (started per session)")
    lines.append(f"broker_factory: {factory_kind()}")
    for tool in ("kcat", "go", "java"):
        lines.append(f"{tool}: {shutil.which(tool)}")
    return lines
