#!/usr/bin/env bash
# Download Apache Kafka's runtime jars (broker + tools + logging) from Maven
# Central into bench/kafka/lib/. Idempotent: does nothing if lib/ is already
# populated for the pom's Kafka version. Pass --force to re-download.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")"
STAMP="$LIB/.fetched-$VERSION"

if [[ "${1:-}" != "--force" && -f "$STAMP" ]]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch.sh: mvn not found (need Maven 3.x + Java 17)" >&2; exit 1; }
rm -rf "$LIB"
mkdir -p "$LIB"
echo "fetch.sh: downloading Kafka $VERSION jars into $LIB" >&2
timeout 900 mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$LIB" -DincludeScope=runtime
ls "$LIB"/kafka_2.13-"$VERSION".jar "$LIB"/kafka-tools-"$VERSION".jar >/dev/null
touch "$STAMP"
echo "fetch.sh: $(ls "$LIB"/*.jar | wc -l) jars in $LIB" >&2
