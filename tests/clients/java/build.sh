#!/usr/bin/env bash
# Build target/harness.jar (shaded, runnable: java -jar target/harness.jar ...).
# Idempotent: skips Maven when the jar is newer than pom.xml and every source.
# Pass --force to rebuild. Prints the jar path on stdout.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAR="$HERE/target/harness.jar"
if [[ "${1:-}" != "--force" && -f "$JAR" ]] && \
   [[ -z "$(find "$HERE/pom.xml" "$HERE/src" -newer "$JAR" -type f -print -quit)" ]]; then
  echo "$JAR"
  exit 0
fi
command -v mvn >/dev/null || { echo "build.sh: mvn not found (need Maven 3.x + Java 17)" >&2; exit 1; }
echo "build.sh: building $JAR" >&2
timeout 900 mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" package -DskipTests >&2
[[ -f "$JAR" ]] || { echo "build.sh: $JAR not produced" >&2; exit 1; }
touch "$JAR"
echo "$JAR"
