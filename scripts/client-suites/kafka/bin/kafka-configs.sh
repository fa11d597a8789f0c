#!/usr/bin/env bash
# kafka-configs.sh stand-in for third-party test suites: forwards to `gregor configs`.
exec "${GREGOR_BIN:?GREGOR_BIN must point at the gregor binary}" configs "$@"
