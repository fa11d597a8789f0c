#!/usr/bin/env bash
# The project's test command: ./scripts/test.sh [extra pytest args...]
#
# Phases:
#   1. install test dependencies (kcat, Python venv, kafkajs, Java client jars)
#      -- scripts/install-test-deps.sh; idempotent, skip with GREGOR_SKIP_INSTALL=1
#   2. cargo build -p gregor-cli --features otel   (the broker binary target/debug/gregor,
#                                           with the OpenTelemetry exporter test_otel.py needs)
#   3. cargo test --workspace, then cargo fmt --check and cargo clippy -D warnings
#                                           (all with gregor-cli/otel: one set of artifacts)
#                                           (skip with GREGOR_SKIP_RUST_TESTS=1)
#   4. pytest -v tests/compat [args]        (third-party client compatibility tests)
#
# Install or build failures stop at once. A failing `cargo test` does not stop the
# compat tests from running (both results are shown); the script then exits non-zero.
# Extra arguments go to pytest, e.g.
#   GREGOR_SKIP_INSTALL=1 GREGOR_SKIP_RUST_TESTS=1 ./scripts/test.sh -k kcat -x
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

START=$SECONDS
phase() {
    echo
    echo "==== [test.sh] $* (at $(date +%H:%M:%S), +$((SECONDS - START))s)"
}

if [[ "${GREGOR_SKIP_INSTALL:-0}" == "1" ]]; then
    phase "install: skipped (GREGOR_SKIP_INSTALL=1)"
    [[ -x .test-deps/venv/bin/pytest ]] || { echo "[test.sh] .test-deps/venv missing: run without GREGOR_SKIP_INSTALL once" >&2; exit 1; }
else
    phase "install test dependencies"
    scripts/install-test-deps.sh
fi

# The otel feature is off by default (it adds ~40 crates to a clean build);
# the same feature set in every cargo command below, so nothing builds twice
# and target/debug/gregor keeps the exporter.
OTEL=(--features gregor-cli/otel)
# A CI run builds once from a clean checkout: incremental state would only
# take disk and time.
if [[ "${CI:-}" == "true" ]]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
phase "cargo build -p gregor-cli ${OTEL[*]}"
cargo build -p gregor-cli "${OTEL[@]}"
[[ -x target/debug/gregor ]] || { echo "[test.sh] target/debug/gregor was not built" >&2; exit 1; }

failed=()
if [[ "${GREGOR_SKIP_RUST_TESTS:-0}" == "1" ]]; then
    phase "cargo test --workspace: skipped (GREGOR_SKIP_RUST_TESTS=1)"
else
    phase "cargo test --workspace --no-fail-fast"
    cargo test --workspace "${OTEL[@]}" --no-fail-fast || failed+=("cargo test --workspace")
    phase "cargo fmt --check; cargo clippy --workspace --all-targets -D warnings"
    cargo fmt --all -- --check || failed+=("cargo fmt --check")
    cargo clippy --workspace --all-targets "${OTEL[@]}" -- -D warnings || failed+=("cargo clippy")
fi

phase "pytest -v tests/compat $*"
export GREGOR_BIN="$REPO/target/debug/gregor"
# `python -m pytest`, not the venv's pytest script: a script's shebang names the path
# the venv was created at, and breaks if .test-deps is reached through another path.
.test-deps/venv/bin/python -m pytest -v tests/compat "$@" || failed+=("pytest tests/compat")

if [[ ${#failed[@]} -gt 0 ]]; then
    phase "FAILED: ${failed[*]} (total $((SECONDS - START))s)"
    exit 1
fi
phase "all phases passed (total $((SECONDS - START))s)"
