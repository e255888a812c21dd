#!/usr/bin/env bash
# Idempotent installer for the Sluice integration-test dependencies.
#
#   tests/install-deps.sh
#
# - kcat (Debian package) if it is not already on PATH
# - a Python venv at tests/.venv with tests/requirements.txt
# - the Go sarama harness (tests/clients/go -> tests/clients/go/sarama-harness)
# - the Java harness, via tests/clients/java/build.sh, when that script exists
#
# Safe to run repeatedly; every step is skipped or cheap when already done.
set -euo pipefail

TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"

log() { echo "[install-deps] $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

# --- kcat -------------------------------------------------------------------
if command -v kcat >/dev/null 2>&1; then
    log "kcat already installed: $(command -v kcat)"
else
    log "installing kcat via apt"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y kcat
fi

# --- Python venv ------------------------------------------------------------
VENV="$TESTS_DIR/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# pip is a no-op when everything pinned is already present.
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$TESTS_DIR/requirements.txt"
log "python deps ok: $("$VENV/bin/python" -c 'import pytest, confluent_kafka, kafka; print("pytest", pytest.__version__, "confluent-kafka", confluent_kafka.version(), "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__)')"

# --- Go sarama harness ------------------------------------------------------
# go.sum is committed, so no checksum-database lookups are needed; the elastic
# sarama fork is not in sum.golang.org's view from every network, so we tell
# the go command not to ask for it.
if command -v go >/dev/null 2>&1; then
    log "building Go sarama harness"
    (
        cd "$TESTS_DIR/clients/go"
        export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/elastic/sarama"
        export GOFLAGS="${GOFLAGS:-} -mod=readonly"
        go build -o sarama-harness .
    )
else
    log "WARNING: go not found; tests/test_sarama.py will fail"
fi

# --- Java harness (written separately) --------------------------------------
if [ -f "$TESTS_DIR/clients/java/build.sh" ]; then
    log "building Java harness"
    bash "$TESTS_DIR/clients/java/build.sh"
else
    log "tests/clients/java/build.sh not present; skipping Java harness build"
fi

log "done"
