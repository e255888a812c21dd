#!/usr/bin/env bash
# Run a Kafka CLI class from bench/kafka/lib with quiet (WARN) logging, e.g.
#   bench/kafka/kafka-class.sh org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:39092 --list
# Heap: KAFKA_TOOL_HEAP (default 512m). Log level: KAFKA_LOG_LEVEL (default WARN).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$HERE/fetch.sh"
exec java -Xmx"${KAFKA_TOOL_HEAP:-512m}" -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
  -Dsluice.log.level="${KAFKA_LOG_LEVEL:-WARN}" \
  -cp "$HERE/lib/*" "$@"
