#!/usr/bin/env bash
# Compare Sluice with Apache Kafka on the same machine using Kafka's perf tools.
#
# Brokers (each started fresh, one at a time, benchmarked, then stopped):
#   kafka        Kafka defaults (page-cache durability, no forced fsync)
#   kafka-flush1 Kafka with log.flush.interval.messages=1 (fsync every append)
#   sluice       $SLUICE_BIN serve --listen 127.0.0.1:PORT --data-dir DIR
#                (skipped when SLUICE_BIN is unset)
# Scenarios (perf.sh, 6-partition topic, fresh topic per scenario):
#   100B acks=1, 100B acks=all   ($SMALL_RECORDS records, default 1000000)
#   1KiB acks=1, 1KiB acks=all   ($LARGE_RECORDS records, default 300000)
# Broker RSS (ps -o rss) and peak RSS (VmHWM) are sampled after the last
# scenario, before the broker is stopped.
#
# Environment:
#   SLUICE_BIN      path to the sluice binary (optional)
#   SLUICE_ARGS     extra `sluice serve` arguments, e.g. "--config bench/kafka/sluice-flush-os.toml"
#   BROKERS         space-separated subset of "kafka kafka-flush1 sluice"
#   SMALL_RECORDS   records per 100-byte scenario (default 1000000)
#   REPEATS         runs per scenario; the table shows the median (default 3).
#                   On a 2-core box identical runs differ by up to ~1.5x, so
#                   do not trust ratios from a single run
#   WARMUP_RECORDS  unrecorded 100-byte acks=1 produce run per broker before the
#                   measured scenarios, so the JVM is warm (default 200000; 0 = off)
#   LARGE_RECORDS   records per 1 KiB scenario (default 300000)
#   PARTITIONS      topic partitions (default 6)
#   KAFKA_PORT      default 39092 (controller on +1)
#   SLUICE_PORT     default 39192
#   WORK_DIR        data + logs (default: new dir under ${TMPDIR:-/tmp});
#                   the filesystem under it decides fsync cost
#   NO_CONSUME=1    skip the consume phase
#   KEEP_DATA=1     keep each broker's data dir (default: deleted after its run)
#
# Output: progress on stderr; the PERF lines and a markdown table on stdout
# (also saved as $WORK_DIR/results.txt and $WORK_DIR/report.md).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

SMALL_RECORDS="${SMALL_RECORDS:-1000000}"
REPEATS="${REPEATS:-3}"
WARMUP_RECORDS="${WARMUP_RECORDS:-200000}"
LARGE_RECORDS="${LARGE_RECORDS:-300000}"
PARTITIONS="${PARTITIONS:-6}"
KAFKA_PORT="${KAFKA_PORT:-39092}"
SLUICE_PORT="${SLUICE_PORT:-39192}"
WORK_DIR="${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sluice-compare.XXXXXX")}"
mkdir -p "$WORK_DIR"
RESULTS="$WORK_DIR/results.txt"
: > "$RESULTS"
if [[ -z "${BROKERS:-}" ]]; then
  BROKERS="kafka kafka-flush1"
  if [[ -n "${SLUICE_BIN:-}" ]]; then BROKERS="$BROKERS sluice"; fi
fi
EXTRA_PERF=()
[[ "${NO_CONSUME:-0}" == 1 ]] && EXTRA_PERF+=(--no-consume)

"$HERE/fetch.sh" || exit 1
log() { echo "compare.sh: $*" >&2; }

BROKER_PID=""
stop_broker() {
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
  fi
  BROKER_PID=""
}
trap stop_broker EXIT
trap 'exit 130' INT TERM

wait_port() { # port timeout_s pid
  local i
  for ((i = 0; i < $2 * 2; i++)); do
    kill -0 "$3" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}

start_broker() { # name -> sets BROKER_PID, BOOT
  local name="$1" dir="$WORK_DIR/$1"
  case "$name" in
    kafka|kafka-flush1)
      local flush=()
      [[ "$name" == kafka-flush1 ]] && flush=(--flush-messages 1)
      BOOT="127.0.0.1:$KAFKA_PORT"
      BROKER_PID="$("$HERE/run-kafka.sh" --port "$KAFKA_PORT" --data "$dir" \
        --partitions "$PARTITIONS" --daemon "${flush[@]}")" || return 1
      ;;
    sluice)
      [[ -x "${SLUICE_BIN:-}" ]] || { log "SLUICE_BIN not executable: ${SLUICE_BIN:-unset}"; return 1; }
      rm -rf "$dir"; mkdir -p "$dir"
      BOOT="127.0.0.1:$SLUICE_PORT"
      # shellcheck disable=SC2086  # SLUICE_ARGS is a list of words on purpose
      "$SLUICE_BIN" serve --listen "$BOOT" --data-dir "$dir/data" ${SLUICE_ARGS:-} > "$dir/sluice.log" 2>&1 &
      BROKER_PID=$!
      if ! wait_port "$SLUICE_PORT" 60 "$BROKER_PID"; then
        log "sluice did not start; log tail:"; tail -n 20 "$dir/sluice.log" >&2
        stop_broker; return 1
      fi
      ;;
    *) log "unknown broker $name"; return 1;;
  esac
  log "$name pid $BROKER_PID on $BOOT"
}

SCENARIOS=(
  "100 1 $SMALL_RECORDS"
  "100 all $SMALL_RECORDS"
  "1024 1 $LARGE_RECORDS"
  "1024 all $LARGE_RECORDS"
)

T0=$SECONDS
for b in $BROKERS; do
  if ! start_broker "$b"; then
    log "could not start $b; skipping"
    echo "BROKER name=$b status=start_failed" >> "$RESULTS"
    continue
  fi
  if [[ "$WARMUP_RECORDS" -gt 0 ]]; then
    log "$b: warm-up, $WARMUP_RECORDS x 100B (not recorded)"
    "$HERE/perf.sh" "$BOOT" --num-records "$WARMUP_RECORDS" --partitions "$PARTITIONS" \
      --no-consume --label "$b-warmup" >/dev/null 2>>"$WORK_DIR/$b-perf.log" || log "$b: warm-up failed"
  fi
  for sc in "${SCENARIOS[@]}"; do
   for ((rep = 1; rep <= REPEATS; rep++)); do
    read -r size acks n <<<"$sc"
    log "$b: ${size}B acks=$acks x $n (run $rep/$REPEATS)"
    line="$("$HERE/perf.sh" "$BOOT" --record-size "$size" --acks "$acks" --num-records "$n" \
      --partitions "$PARTITIONS" --label "$b" "${EXTRA_PERF[@]+"${EXTRA_PERF[@]}"}" \
      2>>"$WORK_DIR/$b-perf.log")"
    [[ -n "$line" ]] || line="PERF label=$b record_size=$size acks=$acks records=$n status=error"
    echo "$line" | tee -a "$RESULTS"
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then log "$b died"; break 2; fi
   done
  done
  rss=NA hwm=NA
  if kill -0 "$BROKER_PID" 2>/dev/null; then
    rss=$(( $(ps -o rss= -p "$BROKER_PID") / 1024 ))
    hwm=$(( $(awk '/VmHWM/ {print $2}' "/proc/$BROKER_PID/status") / 1024 ))
  fi
  echo "BROKER name=$b rss_mib=$rss peak_rss_mib=$hwm" | tee -a "$RESULTS"
  stop_broker
  # Drop the bulky log segments (GBs); keep the broker's own log file.
  [[ "${KEEP_DATA:-0}" == 1 ]] || rm -rf "$WORK_DIR/$b/logs" "$WORK_DIR/$b/metadata" "$WORK_DIR/$b/data"
done
log "done in $((SECONDS - T0)) s; raw results in $RESULTS"

python3 - "$RESULTS" > "$WORK_DIR/report.md" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in l.split()[1:] if "=" in kv)
        for l in open(sys.argv[1]) if l.strip()]
perf = [r for r in rows if "record_size" in r]
brokers = {r["name"]: r for r in rows if "name" in r}
names = [n for n in ("kafka", "kafka-flush1", "sluice") if n in brokers]
def num(v):
    try: return float(v)
    except (TypeError, ValueError): return None
def get(label, size, acks, key):
    vals = sorted(v for v in (num(r.get(key)) for r in perf
                  if r.get("label") == label and r.get("record_size") == size
                  and r.get("acks") == acks) if v is not None)
    return statistics.median(vals) if vals else None
def fmt(v):
    if v is None: return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}x"
metrics = [("produce msg/s", "produce_msgs_s"), ("produce MB/s", "produce_mb_s"),
           ("produce avg ms", "produce_avg_ms"), ("produce p99 ms", "produce_p99_ms"),
           ("consume msg/s", "consume_msgs_s"), ("consume MB/s", "consume_mb_s")]
hdr = ["scenario", "metric"] + names
if "sluice" in names:
    hdr += [f"sluice/{n}" for n in names if n != "sluice"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
seen = []
for r in perf:
    k = (r["record_size"], r["acks"], r.get("records", "?"))
    if k not in seen: seen.append(k)
for size, acks, n in seen:
    for title, key in metrics:
        vals = {b: get(b, size, acks, key) for b in names}
        cells = [f"{size}B acks={acks} n={n}", title] + [fmt(vals[b]) for b in names]
        if "sluice" in names:
            cells += [ratio(vals["sluice"], vals[b]) for b in names if b != "sluice"]
        print("| " + " | ".join(cells) + " |")
for title, key in (("RSS at end (MiB)", "rss_mib"), ("peak RSS (MiB)", "peak_rss_mib")):
    vals = {b: num(brokers[b].get(key)) for b in names}
    cells = ["broker", title] + [fmt(vals[b]) for b in names]
    if "sluice" in names:
        cells += [ratio(vals["sluice"], vals[b]) for b in names if b != "sluice"]
    print("| " + " | ".join(cells) + " |")
print()
runs = max([sum(1 for r in perf if r.get("label") == b and (r.get("record_size"), r.get("acks")) == k[:2])
            for b in names for k in seen] or [0])
print(f"Median of up to {runs} run(s) per cell.")
print("Latencies are ProducerPerformance's (unthrottled, so they include client-side queueing);")
print("for latency metrics a ratio below 1 favours Sluice, for throughput above 1 does.")
PY
echo
cat "$WORK_DIR/report.md"
