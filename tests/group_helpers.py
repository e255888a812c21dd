"""Consumer-group machinery shared by the tests/test_groups_*.py files
(confluent-kafka / librdkafka consumers in threads, no fixtures here).

A :class:`GroupRun` holds the shared bookkeeping for one group over one topic:

* ``expected``   (partition, offset) -> value, from the producer's acks;
* ``delivered``  how often each (partition, offset) was handed to the app;
* ``committed``  per partition, the highest offset whose OffsetCommit the
  broker acknowledged (updated only after a successful synchronous commit);
* ``owners``     which member currently owns each partition, maintained from
  the rebalance callbacks;
* ``violations`` every broken invariant, with enough detail to debug it:
  a record below a committed offset handed out again, a partition assigned
  to a member while another member still owns it, a record from a partition
  the member does not own, a value that differs from what was produced.

Each :class:`Member` is a thread running a poll loop with its own
``confluent_kafka.Consumer`` (subscribe, ``enable.auto.commit=false``,
synchronous commit of the processed offsets after each batch).

Consumption is gated by ``GroupRun.budget``: once that many distinct records
have been consumed, members pause their partitions (they keep polling, so
rebalances proceed).  Tests raise the budget in steps so that membership
changes happen while data is still flowing, however fast the machine is.
"""

from __future__ import annotations

import queue
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from helpers import wait_for

INF = float("inf")


class GroupRun:
    def __init__(self, bootstrap: str, topic: str, group: str, partitions: int,
                 expected: dict | None = None):
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.partitions = partitions
        self.expected = expected or {}
        self.lock = threading.Lock()
        self.delivered: dict[tuple[int, int], int] = {}
        self.committed: dict[int, int] = {}
        self.owners: dict[int, str] = {}
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.budget = INF
        self.distinct = 0
        self.deliveries = 0
        self.commits_ok = 0
        self.commits_failed: list[str] = []
        self.members: list[Member] = []

    # -- bookkeeping (called from member threads) -------------------------

    def violation(self, msg: str) -> None:
        with self.lock:
            if len(self.violations) < 1000:
                self.violations.append(msg)

    def seen(self, member: "Member", p: int, off: int, value: bytes | None) -> None:
        with self.lock:
            self.deliveries += 1
            c = self.committed.get(p, -1)
            if off < c and len(self.violations) < 1000:
                self.violations.append(
                    f"{member.name}: record {p}@{off} delivered again although offset {c} "
                    f"was committed for partition {p}")
            owner = self.owners.get(p)
            if owner != member.name and len(self.violations) < 1000:
                self.violations.append(f"{member.name}: got record {p}@{off} but partition {p} "
                                       f"is owned by {owner}")
            if self.expected:
                want = self.expected.get((p, off))
                if want is None:
                    self.violations.append(f"{member.name}: record {p}@{off} was never produced")
                elif want != value:
                    self.violations.append(f"{member.name}: record {p}@{off} value {value[:40]!r}, "
                                           f"produced {want[:40]!r}")
            n = self.delivered.get((p, off), 0)
            if n == 0:
                self.distinct += 1
            self.delivered[(p, off)] = n + 1

    def committed_ok(self, p: int, off: int) -> None:
        with self.lock:
            self.commits_ok += 1
            if off > self.committed.get(p, -1):
                self.committed[p] = off

    def assigned(self, member: "Member", parts: list[int]) -> None:
        with self.lock:
            for p in parts:
                o = self.owners.get(p)
                if o is not None and o != member.name:
                    self.violations.append(f"partition {p} assigned to {member.name} while "
                                           f"{o} still owns it (no revoke yet)")
                self.owners[p] = member.name

    def released(self, member: "Member", parts: list[int]) -> None:
        with self.lock:
            for p in parts:
                if self.owners.get(p) == member.name:
                    del self.owners[p]

    # -- views for the test thread -----------------------------------------

    def live(self) -> list["Member"]:
        return [m for m in self.members if m.is_alive() and not m.stopping.is_set()]

    def assignment(self) -> dict[str, list[int]]:
        with self.lock:
            return {m.name: sorted(m.assignment) for m in self.live()}

    def marks(self) -> dict[str, int]:
        return {m.name: m.assign_events for m in self.members}

    def settled(self, marks: dict[str, int]) -> dict[str, list[int]] | None:
        """The assignment of the live members if the group has settled after
        a membership change: every live member was assigned partitions (or
        nothing) *after* the change (``marks`` taken before it), none is
        between a revoke and the next assign, and together they own every
        partition exactly once.  Otherwise None."""
        for m in self.members:
            if m.failed:
                raise AssertionError(f"member {m.name} died: {m.failed}")
        live = self.live()
        if not live:
            return None
        with self.lock:
            for m in live:
                if m.assign_events <= marks.get(m.name, 0) or not m.has_assignment:
                    return None
            parts = [p for m in live for p in m.assignment]
            if sorted(parts) != list(range(self.partitions)):
                return None
            return {m.name: sorted(m.assignment) for m in live}

    def wait_settled(self, marks: dict[str, int], what: str, timeout: float = 90.0):
        try:
            return wait_for(lambda: self.settled(marks), timeout, 0.1, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; assignment now {self.assignment()}, "
                                 f"violations {self.violations[:5]}") from None

    def check(self) -> None:
        assert not self.violations, (f"{len(self.violations)} violations, first: "
                                     + "\n  ".join(self.violations[:20]))
        for m in self.members:
            assert not m.failed, f"member {m.name} died: {m.failed}"

    def stats(self) -> str:
        with self.lock:
            dups = self.deliveries - self.distinct
            return (f"{self.distinct} distinct records, {self.deliveries} deliveries "
                    f"({dups} redelivered above the committed offset), {self.commits_ok} "
                    f"partition commits ok, {len(self.commits_failed)} commit calls failed "
                    f"{self.commits_failed[:3]}")


def assert_balanced(assignment: dict[str, list[int]], partitions: int, what: str) -> None:
    sizes = [len(v) for v in assignment.values()]
    allp = sorted(p for v in assignment.values() for p in v)
    assert allp == list(range(partitions)), f"{what}: partitions not covered exactly once: {assignment}"
    assert max(sizes) - min(sizes) <= 1, f"{what}: unbalanced assignment {assignment}"


class Member(threading.Thread):
    """One group member: a confluent-kafka Consumer in a poll loop."""

    def __init__(self, run: GroupRun, name: str, batch: int = 500, conf: dict | None = None):
        super().__init__(name=name, daemon=True)
        self.run_ = run
        self.batch = batch
        self.conf = {
            "bootstrap.servers": run.bootstrap,
            "group.id": run.group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **(conf or {}),
        }
        self.assignment: set[int] = set()
        self.has_assignment = False   # False between a revoke and the next assign
        self.assign_events = 0
        self.lost_events = 0
        self.paused = False
        self.dirty = False            # assignment changed: (re)apply pause state
        self.stopping = threading.Event()
        self.failed: str | None = None
        self.closed = threading.Event()
        self.fatal_errors: list[str] = []
        self.calls: "queue.Queue" = queue.Queue()

    def call(self, fn, timeout: float = 60.0):
        """Run ``fn(consumer)`` on the member's thread (between polls) and
        return its result (or raise its exception)."""
        done = threading.Event()
        box: dict = {}

        def job(c):
            try:
                box["v"] = fn(c)
            except BaseException as e:  # noqa: BLE001
                box["e"] = e
            done.set()
        self.calls.put(job)
        assert done.wait(timeout), f"{self.name}: call not served within {timeout}s"
        if "e" in box:
            raise box["e"]
        return box.get("v")

    # rebalance callbacks run inside consume(), on this thread
    def _on_assign(self, consumer, tps):
        parts = [tp.partition for tp in tps]
        self.run_.assigned(self, parts)
        with self.run_.lock:
            self.assignment = set(parts)
            self.has_assignment = True
            self.assign_events += 1
            self.dirty = True
            self.paused = False

    def _on_revoke(self, consumer, tps):
        parts = [tp.partition for tp in tps]
        self.run_.released(self, parts)
        with self.run_.lock:
            self.assignment -= set(parts)
            self.has_assignment = False

    def _on_lost(self, consumer, tps):
        self.lost_events += 1
        self._on_revoke(consumer, tps)

    def run(self):
        r = self.run_
        try:
            c = Consumer(self.conf)
        except Exception as e:  # noqa: BLE001
            self.failed = f"cannot create consumer: {e!r}"
            return
        try:
            c.subscribe([r.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                        on_lost=self._on_lost)
            while not self.stopping.is_set():
                while not self.calls.empty():
                    self.calls.get()(c)
                want_pause = r.distinct >= r.budget
                if self.assignment and (self.dirty or want_pause != self.paused):
                    tps = [TopicPartition(r.topic, p) for p in sorted(self.assignment)]
                    (c.pause if want_pause else c.resume)(tps)
                    self.paused = want_pause
                    self.dirty = False
                msgs = c.consume(self.batch, 0.2)
                if not msgs:
                    continue
                upto: dict[int, int] = {}
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        if err.fatal() or not err.retriable():
                            self.fatal_errors.append(str(err))
                        r.errors.append(f"{self.name}: {err}")
                        continue
                    r.seen(self, m.partition(), m.offset(), m.value())
                    upto[m.partition()] = max(upto.get(m.partition(), -1), m.offset() + 1)
                if upto:
                    self.commit(c, upto)
        except Exception as e:  # noqa: BLE001
            self.failed = repr(e)
        finally:
            try:
                c.close()
            except Exception as e:  # noqa: BLE001
                if not self.failed:
                    self.failed = f"close failed: {e!r}"
            self.closed.set()

    def commit(self, c: Consumer, upto: dict[int, int]) -> None:
        r = self.run_
        tps = [TopicPartition(r.topic, p, o) for p, o in sorted(upto.items())]
        try:
            res = c.commit(offsets=tps, asynchronous=False)
        except KafkaException as e:
            r.commits_failed.append(f"{self.name}: {e.args[0]}")
            return
        for tp in res or []:
            if tp.error is not None:
                r.commits_failed.append(f"{self.name}: {tp.partition}: {tp.error}")
            else:
                r.committed_ok(tp.partition, tp.offset)

    def stop(self, timeout: float = 60.0) -> None:
        """Leave the group (close() sends LeaveGroup) and wait for the thread."""
        self.stopping.set()
        self.join(timeout)
        assert not self.is_alive(), f"member {self.name} did not close within {timeout}s"


def start_member(run: GroupRun, name: str, **kw) -> Member:
    m = Member(run, name, **kw)
    run.members.append(m)
    m.start()
    return m


def wait_consumed(run: GroupRun, highs: dict[int, int], timeout: float = 120.0) -> None:
    """Wait until every record up to the high watermarks was consumed and its
    offset committed."""
    total = sum(highs.values())

    def done():
        for m in run.members:
            if m.failed:
                raise AssertionError(f"member {m.name} died: {m.failed}")
        with run.lock:
            return (run.distinct >= total
                    and all(run.committed.get(p, 0) >= h for p, h in highs.items() if h > 0))

    try:
        wait_for(done, timeout, 0.1, what="all records consumed and committed")
    except AssertionError as e:
        with run.lock:
            missing = [(p, o) for p, h in highs.items() for o in range(h)
                       if (p, o) not in run.delivered][:10]
            raise AssertionError(f"{e}: {run.distinct}/{total} distinct records, committed "
                                 f"{dict(sorted(run.committed.items()))} vs highs {highs}, first "
                                 f"missing {missing}, assignment {run.assignment()}, violations "
                                 f"{run.violations[:5]}") from None


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as the broker reports them (OffsetFetch),
    from a consumer that does not join the group."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    retriable = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                 KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT,
                 KafkaError._TRANSPORT}

    def fetch():
        # Right after a (re)start the coordinator may still be loading the
        # group (Kafka answers NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS).
        try:
            return c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        except KafkaException as e:
            if e.args[0].code() in retriable:
                return None
            raise

    try:
        res = wait_for(fetch, 60, 0.5, what=f"OffsetFetch for group {group}")
        out = {}
        for tp in res:
            assert tp.error is None, f"OffsetFetch {topic}/{tp.partition}: {tp.error}"
            out[tp.partition] = tp.offset
        return out
    finally:
        c.close()


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    import uuid
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def produce_values(bootstrap: str, topic: str, n: int, prefix: str = "v"):
    """Produce n records (value ``{prefix}-{i}``, keys spread over all
    partitions) with one request in flight; return {(partition, offset): value}."""
    from helpers import produce_confluent
    recs = [(f"k{i}".encode(), f"{prefix}-{i}".encode()) for i in range(n)]
    acks = produce_confluent(bootstrap, topic, recs, **{"batch.size": 1_000_000, "linger.ms": 20})
    return {pa: v for (k, v), pa in zip(recs, acks)}


def now() -> float:
    return time.monotonic()
