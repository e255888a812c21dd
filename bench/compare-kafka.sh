#!/usr/bin/env bash
# One command: start Apache Kafka (fsync on every append, like Sluice's default
# flush = "batch") and Sluice, run `sluice-bench compare` for a workload, stop both.
#
#   bench/compare-kafka.sh [WORKLOAD.toml] [extra sluice-bench compare args...]
#   bench/compare-kafka.sh bench/workloads/fixed-rate-latency.toml --rounds 3 --duration-s 20
#
# Env: KAFKA_PORT (39092; the controller uses +1), SLUICE_PORT (39192),
#      KAFKA_FLUSH_MESSAGES (1; empty = Kafka's default, page cache only),
#      SLUICE_BIN (target/release/sluice), BENCH_BIN (target/release/sluice-bench),
#      WORK_DIR (a fresh temp dir; data, logs and the report), KEEP_DATA=1 keeps WORK_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORKLOAD="${1:-$ROOT/bench/workloads/max-throughput-100b.toml}"
shift || true
KAFKA_PORT="${KAFKA_PORT:-39092}"
SLUICE_PORT="${SLUICE_PORT:-39192}"
KAFKA_FLUSH_MESSAGES="${KAFKA_FLUSH_MESSAGES-1}"
SLUICE_BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
BENCH_BIN="${BENCH_BIN:-$ROOT/target/release/sluice-bench}"
WORK_DIR="${WORK_DIR:-$(mktemp -d /tmp/sluice-bench-compare.XXXXXX)}"

die() { echo "compare-kafka.sh: $*" >&2; exit 1; }
[[ -f "$WORKLOAD" ]] || die "no workload file $WORKLOAD"
[[ -x "$SLUICE_BIN" && -x "$BENCH_BIN" ]] || die "build first: cargo build --release --workspace"
"$BENCH_BIN" check "$WORKLOAD" >/dev/null

SLUICE_PID=""
KAFKA_DATA="$WORK_DIR/kafka"
cleanup() {
  [[ -n "$SLUICE_PID" ]] && kill "$SLUICE_PID" 2>/dev/null && wait "$SLUICE_PID" 2>/dev/null || true
  [[ -f "$KAFKA_DATA/kafka.pid" ]] && kill "$(cat "$KAFKA_DATA/kafka.pid")" 2>/dev/null || true
  if [[ -z "${KEEP_DATA:-}" ]]; then rm -rf "$KAFKA_DATA" "$WORK_DIR/sluice-data"; fi
}
trap cleanup EXIT

FLUSH_ARGS=()
[[ -n "$KAFKA_FLUSH_MESSAGES" ]] && FLUSH_ARGS=(--flush-messages "$KAFKA_FLUSH_MESSAGES")
echo "starting Kafka on 127.0.0.1:$KAFKA_PORT (flush-messages=${KAFKA_FLUSH_MESSAGES:-default})" >&2
"$ROOT/bench/kafka/run-kafka.sh" --port "$KAFKA_PORT" --data "$KAFKA_DATA" "${FLUSH_ARGS[@]}" --daemon >&2

echo "starting Sluice on 127.0.0.1:$SLUICE_PORT" >&2
"$SLUICE_BIN" serve --listen "127.0.0.1:$SLUICE_PORT" --data-dir "$WORK_DIR/sluice-data" \
  2> "$WORK_DIR/sluice.log" &
SLUICE_PID=$!
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$SLUICE_PORT") 2>/dev/null && break
  kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice exited; see $WORK_DIR/sluice.log"
  sleep 0.1
done

"$BENCH_BIN" compare --workload "$WORKLOAD" \
  --target "sluice=127.0.0.1:$SLUICE_PORT" --target "kafka=127.0.0.1:$KAFKA_PORT" \
  --out "$WORK_DIR/report" "$@"
echo "report: $WORK_DIR/report/compare.html" >&2
