#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need, then runs every suite.
#   1. unit, property and scenario tests (cargo test: protocol, storage, broker, wire tests
#      that start the real binary)
#   2. the real-client suite over TCP (pytest: kcat, confluent-kafka, kafka-python,
#      sarama as Filebeat configures it, the Java client incl. 1M-record idempotence)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash tests/install-deps.sh
cargo build --release --workspace --locked
cargo test --workspace --release --locked
SLUICE_BIN="$ROOT/target/release/sluice" tests/.venv/bin/pytest tests/ -q -p no:cacheprovider
