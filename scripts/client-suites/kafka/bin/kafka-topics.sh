#!/usr/bin/env bash
# kafka-topics.sh stand-in for third-party test suites (librdkafka's KAFKA_PATH,
# kafka-python's KAFKA_ROOT): forwards every argument to `gregor topics`.
# GREGOR_BIN is set by scripts/run-client-suites.sh.
exec "${GREGOR_BIN:?GREGOR_BIN must point at the gregor binary}" topics "$@"
