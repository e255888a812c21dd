#!/usr/bin/env bash
# Run the Java client harness end to end against Apache Kafka or Sluice.
#
# Usage:
#   run.sh [--broker kafka|sluice] [--count N] [--idem-count N] [--only CHECK]
#
#   --broker kafka    (default) bench/kafka/run-kafka.sh (jars fetched on demand)
#   --broker sluice   $SLUICE_BIN serve --listen 127.0.0.1:PORT --data-dir DIR
#                     [--advertise 127.0.0.1:PROXY_PORT]
#   --count N         records per produce-consume check (default 100000)
#   --idem-count N    records for the idempotence check (default 1000000)
#   --only CHECK      one of: default, acks1, logstash, idempotence
#
# Environment: PORT (default 39092; Kafka also uses PORT+1 for its controller),
# PROXY_PORT (default PORT+2), WORK_DIR (default: new dir under ${TMPDIR:-/tmp}).
#
# Checks:
#   default      produce-consume, default producer (idempotent, acks=all)
#   acks1        produce-consume --acks 1
#   logstash     produce-consume --acks 1 --logstash
#   idempotence  broker restarted advertising the proxy address; 1M records
#                through a connection-cutting proxy, exactly-once check
# Exit status: 0 if every check passed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"

BROKER=kafka COUNT=100000 IDEM_COUNT=1000000 ONLY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --broker) BROKER="$2"; shift 2;;
    --count) COUNT="$2"; shift 2;;
    --idem-count) IDEM_COUNT="$2"; shift 2;;
    --only) ONLY="$2"; shift 2;;
    -h|--help) sed -n '2,24p' "$0"; exit 0;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2;;
  esac
done
PORT="${PORT:-39092}"
PROXY_PORT="${PROXY_PORT:-$((PORT + 2))}"
WORK_DIR="${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sluice-java-clients.XXXXXX")}"
mkdir -p "$WORK_DIR"
log() { echo "run.sh: $*" >&2; }

JAR="$("$HERE/build.sh")" || { log "build failed"; exit 1; }
HARNESS=(java -Xmx1g -jar "$JAR")

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

start_broker() { # advertise-address data-subdir
  local adv="$1" dir="$WORK_DIR/$2"
  case "$BROKER" in
    kafka)
      BROKER_PID="$("$ROOT/bench/kafka/run-kafka.sh" --port "$PORT" --data "$dir" \
        --advertise "$adv" --daemon)" || return 1
      ;;
    sluice)
      [[ -x "${SLUICE_BIN:-}" ]] || { log "set SLUICE_BIN to the sluice binary"; return 1; }
      rm -rf "$dir"; mkdir -p "$dir"
      local extra=()
      [[ "$adv" != "127.0.0.1:$PORT" ]] && extra=(--advertise "$adv")
      "$SLUICE_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir/data" "${extra[@]}" \
        > "$dir/sluice.log" 2>&1 &
      BROKER_PID=$!
      local i
      for ((i = 0; i < 120; i++)); do
        kill -0 "$BROKER_PID" 2>/dev/null || { log "sluice exited:"; tail -n 20 "$dir/sluice.log" >&2; return 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.5
      done
      ;;
    *) log "unknown broker $BROKER"; return 1;;
  esac
  log "$BROKER pid $BROKER_PID on 127.0.0.1:$PORT advertising $adv"
}

declare -A RESULT
ORDER=()
run_check() { # name, harness args...
  local name="$1"; shift
  [[ -n "$ONLY" && "$ONLY" != "$name" ]] && return 0
  ORDER+=("$name")
  log "=== $name: ${*}"
  local t0=$SECONDS
  if timeout 600 "${HARNESS[@]}" "$@"; then
    RESULT[$name]="PASS ($((SECONDS - t0)) s)"
  else
    RESULT[$name]="FAIL ($((SECONDS - t0)) s)"
  fi
}

if [[ -z "$ONLY" || "$ONLY" != idempotence ]]; then
  if start_broker "127.0.0.1:$PORT" plain; then
    B="127.0.0.1:$PORT"
    run_check default produce-consume --bootstrap "$B" --topic "hc-default-$RANDOM" --count "$COUNT"
    run_check acks1 produce-consume --bootstrap "$B" --topic "hc-acks1-$RANDOM" --count "$COUNT" --acks 1
    run_check logstash produce-consume --bootstrap "$B" --topic "hc-logstash-$RANDOM" --count "$COUNT" --acks 1 --logstash
  else
    for c in default acks1 logstash; do
      [[ -z "$ONLY" || "$ONLY" == "$c" ]] && { ORDER+=("$c"); RESULT[$c]="FAIL (broker did not start)"; }
    done
  fi
  stop_broker
fi
if [[ -z "$ONLY" || "$ONLY" == idempotence ]]; then
  if start_broker "127.0.0.1:$PROXY_PORT" proxied; then
    run_check idempotence idempotence --proxy-listen "127.0.0.1:$PROXY_PORT" --target "127.0.0.1:$PORT" \
      --topic "hc-idem-$RANDOM" --count "$IDEM_COUNT"
  else
    ORDER+=(idempotence); RESULT[idempotence]="FAIL (broker did not start)"
  fi
  stop_broker
fi

rc=0
echo "java client checks against $BROKER:"
for c in "${ORDER[@]}"; do
  echo "  $c: ${RESULT[$c]}"
  [[ "${RESULT[$c]}" == PASS* ]] || rc=1
done
exit $rc
