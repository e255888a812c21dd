#!/usr/bin/env bash
# Run a single-node Apache Kafka (KRaft, combined broker+controller) from the
# Maven Central jars in bench/kafka/lib (downloaded by fetch.sh on demand).
#
# Usage:
#   run-kafka.sh --port P --data DIR [options]
#
# Options:
#   --port P              client listener 127.0.0.1:P (controller uses P+1)
#   --data DIR            state directory; wiped and re-formatted on every start
#                         unless --keep-data is given
#   --flush-messages N    log.flush.interval.messages=N (1 = fsync every message
#                         batch, roughly Sluice's durability); default: Kafka's
#                         default (never force, rely on the page cache)
#   --partitions N        num.partitions for auto-created topics (default 6)
#   --advertise H:P       advertised listener (default 127.0.0.1:P); set it to a
#                         proxy's address when testing through a proxy
#   --heap SIZE           JVM heap (-Xms/-Xmx), default 1g
#   --daemon              start in the background: log to DIR/kafka.log, pid in
#                         DIR/kafka.pid, return once the port accepts connections
#                         (stop with: kill "$(cat DIR/kafka.pid)")
#   --keep-data           do not wipe DIR; format only if not formatted yet
#   --set KEY=VALUE       extra broker property (repeatable)
#
# Without --daemon Kafka runs in the foreground (exec), logging to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PORT="" DATA="" FLUSH="" PARTITIONS=6 ADVERTISE="" HEAP=1g DAEMON=0 KEEP=0
EXTRA=()
die() { echo "run-kafka.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) PORT="$2"; shift 2;;
    --data) DATA="$2"; shift 2;;
    --flush-messages) FLUSH="$2"; shift 2;;
    --partitions) PARTITIONS="$2"; shift 2;;
    --advertise) ADVERTISE="$2"; shift 2;;
    --heap) HEAP="$2"; shift 2;;
    --daemon) DAEMON=1; shift;;
    --keep-data) KEEP=1; shift;;
    --set) EXTRA+=("$2"); shift 2;;
    -h|--help) sed -n '2,27p' "$0"; exit 0;;
    *) die "unknown argument: $1";;
  esac
done
[[ -n "$PORT" ]] || die "--port is required"
[[ -n "$DATA" ]] || die "--data is required"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "bad --port: $PORT"
CPORT=$((PORT + 1))
ADVERTISE="${ADVERTISE:-127.0.0.1:$PORT}"

"$HERE/fetch.sh"
command -v java >/dev/null || die "java not found (need Java 17+)"

if [[ "$KEEP" == 0 ]]; then rm -rf "$DATA"; fi
mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"
PROPS="$DATA/server.properties"

cat > "$PROPS" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://$ADVERTISE
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA/logs
metadata.log.dir=$DATA/metadata
num.partitions=$PARTITIONS
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=3
num.io.threads=8
EOF
if [[ -n "$FLUSH" ]]; then
  echo "log.flush.interval.messages=$FLUSH" >> "$PROPS"
fi
for kv in "${EXTRA[@]+"${EXTRA[@]}"}"; do echo "$kv" >> "$PROPS"; done

CP="$HERE/lib/*"
JAVA_OPTS=(-Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
  -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$HERE/log4j2.properties"
  -Dsluice.log.level="${KAFKA_LOG_LEVEL:-INFO}")

if [[ ! -f "$DATA/metadata/meta.properties" ]]; then
  CLUSTER_ID="$(java -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dsluice.log.level=WARN \
    -cp "$CP" kafka.tools.StorageTool random-uuid)"
  java -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dsluice.log.level=WARN \
    -cp "$CP" kafka.tools.StorageTool format --standalone \
    -t "$CLUSTER_ID" -c "$PROPS" >&2
fi

if [[ "$DAEMON" == 0 ]]; then
  exec java "${JAVA_OPTS[@]}" -cp "$CP" kafka.Kafka "$PROPS"
fi

LOG="$DATA/kafka.log"
nohup java "${JAVA_OPTS[@]}" -cp "$CP" kafka.Kafka "$PROPS" > "$LOG" 2>&1 &
PID=$!
echo "$PID" > "$DATA/kafka.pid"
# Wait (bounded) until the client listener accepts connections.
for _ in $(seq 1 240); do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "run-kafka.sh: Kafka exited during startup; last log lines:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
  if grep -q "Kafka Server started" "$LOG" 2>/dev/null && \
     (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "run-kafka.sh: Kafka pid $PID listening on 127.0.0.1:$PORT (advertised $ADVERTISE), log $LOG" >&2
    echo "$PID"
    exit 0
  fi
  sleep 0.5
done
echo "run-kafka.sh: Kafka did not start within 120 s; log $LOG" >&2
kill "$PID" 2>/dev/null || true
exit 1
