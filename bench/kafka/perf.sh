#!/usr/bin/env bash
# Drive any Kafka-protocol endpoint (Apache Kafka or Sluice) with Kafka's own
# ProducerPerformance and ConsumerPerformance tools.
#
# Usage:
#   perf.sh HOST:PORT [options]
#
# Options:
#   --record-size BYTES   100 (default) or 1024, any value works
#   --acks 1|all          producer acks (default 1)
#   --num-records N       records to produce, then consume (default 1000000)
#   --partitions N        partitions of the topic created first (default 6)
#   --topic NAME          topic name (default perf-<size>-<acks>-<random>)
#   --throughput N        producer throttle in msg/s (default -1 = unthrottled)
#   --producer-prop K=V   extra producer property (repeatable)
#   --no-consume          skip the ConsumerPerformance phase
#   --label TEXT          free-form label copied into the summary line
#
# The topic is created with TopicCommand (CreateTopics API); if that fails
# (e.g. the broker lacks the admin API) the script carries on and relies on
# auto-creation. ConsumerPerformance uses a consumer group (classic protocol).
#
# Output: tool output goes to stderr; stdout gets exactly one summary line:
#   PERF label=.. bootstrap=.. record_size=.. acks=.. partitions=.. records=..
#        produce_msgs_s=.. produce_mb_s=.. produce_avg_ms=.. produce_p99_ms=..
#        produce_max_ms=.. consume_msgs_s=.. consume_mb_s=.. consume_fetch_msgs_s=..
#        consume_fetch_mb_s=.. consumed=.. status=ok|produce_failed|consume_failed
# (values are NA when a phase failed or was skipped). MB = 2^20 bytes.
# Exit status: 0 if every phase that ran succeeded.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K="$HERE/kafka-class.sh"

die() { echo "perf.sh: $*" >&2; exit 2; }
[[ $# -ge 1 ]] || die "usage: perf.sh HOST:PORT [options] (see header)"
BOOT="$1"; shift
SIZE=100 ACKS=1 N=1000000 PARTS=6 TOPIC="" TPUT=-1 CONSUME=1 LABEL="-"
PPROPS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --record-size) SIZE="$2"; shift 2;;
    --acks) ACKS="$2"; shift 2;;
    --num-records) N="$2"; shift 2;;
    --partitions) PARTS="$2"; shift 2;;
    --topic) TOPIC="$2"; shift 2;;
    --throughput) TPUT="$2"; shift 2;;
    --producer-prop) PPROPS+=("$2"); shift 2;;
    --no-consume) CONSUME=0; shift;;
    --label) LABEL="${2// /_}"; shift 2;;
    -h|--help) sed -n '2,30p' "$0"; exit 0;;
    *) die "unknown argument: $1";;
  esac
done
TOPIC="${TOPIC:-perf-$SIZE-$ACKS-$RANDOM$RANDOM}"
"$HERE/fetch.sh" || die "fetch.sh failed"

# Generous bound: a broker that stalls must not hang the benchmark forever.
LIMIT=$(( 120 + N * SIZE / 1000000 ))

echo "perf.sh: creating topic $TOPIC ($PARTS partitions) on $BOOT" >&2
if ! timeout 60 "$K" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" \
    --create --if-not-exists --topic "$TOPIC" --partitions "$PARTS" --replication-factor 1 >&2; then
  echo "perf.sh: WARNING: topic creation failed; relying on auto-create" >&2
fi

STATUS=ok
P_MSGS=NA P_MB=NA P_AVG=NA P_P99=NA P_MAX=NA
C_MSGS=NA C_MB=NA C_FMSGS=NA C_FMB=NA C_N=NA

echo "perf.sh: producing $N x ${SIZE}B acks=$ACKS to $TOPIC" >&2
POUT="$(mktemp)"
timeout "$LIMIT" "$K" org.apache.kafka.tools.ProducerPerformance --topic "$TOPIC" \
  --num-records "$N" --record-size "$SIZE" --throughput "$TPUT" \
  --producer-props bootstrap.servers="$BOOT" acks="$ACKS" "${PPROPS[@]+"${PPROPS[@]}"}" \
  2>&1 | tee "$POUT" >&2
PRC=${PIPESTATUS[0]}
# Final line: "N records sent, X records/sec (Y MB/sec), A ms avg latency,
#              M ms max latency, .. 50th, .. 95th, P ms 99th, .. 99.9th."
FINAL="$(grep '99th' "$POUT" | tail -n 1)"
rm -f "$POUT"
if [[ $PRC -eq 0 && -n "$FINAL" ]]; then
  read -r P_MSGS P_MB P_AVG P_MAX P_P99 < <(echo "$FINAL" | sed -E \
    's/^[0-9]+ records sent, ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\), ([0-9.]+) ms avg latency, ([0-9.]+) ms max latency, [0-9.]+ ms 50th, [0-9.]+ ms 95th, ([0-9.]+) ms 99th.*/\1 \2 \3 \4 \5/')
else
  STATUS=produce_failed
  echo "perf.sh: ProducerPerformance failed (rc=$PRC)" >&2
fi

if [[ $CONSUME -eq 1 && $STATUS == ok ]]; then
  echo "perf.sh: consuming $N records from $TOPIC" >&2
  COUT="$(mktemp)"
  timeout "$LIMIT" "$K" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$BOOT" \
    --topic "$TOPIC" --messages "$N" --timeout 30000 \
    --group "perf-group-$RANDOM$RANDOM" 2>&1 | tee "$COUT" >&2
  CRC=${PIPESTATUS[0]}
  # CSV: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
  #      nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
  CLINE="$(grep -E '^[0-9]{4}-' "$COUT" | tail -n 1)"
  rm -f "$COUT"
  if [[ $CRC -eq 0 && -n "$CLINE" ]]; then
    IFS=',' read -r _ _ _ C_MB C_N C_MSGS _ _ C_FMB C_FMSGS <<<"${CLINE// /}"
    if [[ "$C_N" != "$N" ]]; then
      STATUS=consume_failed
      echo "perf.sh: consumed $C_N of $N records" >&2
    fi
  else
    STATUS=consume_failed
    echo "perf.sh: ConsumerPerformance failed (rc=$CRC)" >&2
  fi
fi

r() { [[ "$1" == NA ]] && echo NA || printf '%.1f' "$1"; }
echo "PERF label=$LABEL bootstrap=$BOOT record_size=$SIZE acks=$ACKS partitions=$PARTS records=$N" \
  "produce_msgs_s=$(r "$P_MSGS") produce_mb_s=$(r "$P_MB") produce_avg_ms=$(r "$P_AVG")" \
  "produce_p99_ms=$(r "$P_P99") produce_max_ms=$(r "$P_MAX")" \
  "consume_msgs_s=$(r "$C_MSGS") consume_mb_s=$(r "$C_MB")" \
  "consume_fetch_msgs_s=$(r "$C_FMSGS") consume_fetch_mb_s=$(r "$C_FMB") consumed=$C_N status=$STATUS"
[[ $STATUS == ok ]]
