#!/usr/bin/env bash
# Installs everything the compatibility tests (tests/compat) need, idempotently:
#   - Debian packages: kcat (Debian's 1.7.1, built on librdkafka 2.0.2),
#     chromium (the console's browser tests)
#   - checks for the JDK (java + javac >= 17), node + npm, python3 with venv
#   - Python venv at .test-deps/venv from tests/compat/requirements.txt
#     (reused while the requirements file is unchanged)
#   - the Kafka Java client jars, found inside that venv, written to
#     .test-deps/java-classpath
#   - kafkajs and its codecs in tests/compat/node/node_modules (npm ci),
#     reused while package-lock.json is unchanged
# Run from anywhere; works on a fresh Debian machine as root.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$REPO/.test-deps"
VENV="$DEPS/venv"
REQS="$REPO/tests/compat/requirements.txt"
NODE_DIR="$REPO/tests/compat/node"

log() { echo "[install-test-deps] $*"; }
die() { echo "[install-test-deps] ERROR: $*" >&2; exit 1; }

mkdir -p "$DEPS"

# ---------------------------------------------------------------- apt packages
apt_updated=0
apt_install() {
    # apt_install PKG...: installs the packages, running `apt-get update` once.
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
        sudo="sudo"
    fi
    if [[ $apt_updated -eq 0 ]]; then
        log "apt-get update"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install $*"
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        </dev/null >"$DEPS/apt-install.log" 2>&1; then
        cat "$DEPS/apt-install.log" >&2
        die "apt-get install $* failed"
    fi
}

need_apt=()
command -v kcat >/dev/null || need_apt+=(kcat)
# Headless Chromium for tests/compat/test_console.py (Playwright drives it
# through executable_path, so Playwright never downloads a browser).
command -v chromium >/dev/null || need_apt+=(chromium)
if [[ ${#need_apt[@]} -gt 0 ]]; then
    apt_install "${need_apt[@]}"
fi
command -v kcat >/dev/null || die "kcat still missing after apt-get install"
log "kcat: $(kcat -V 2>&1 | grep -m1 '^Version' | sed -E 's/^Version ([^ ]+).*librdkafka ([^ ]+).*/\1 on librdkafka \2/')"

# ---------------------------------------------------------------- toolchains we expect, not install
command -v java >/dev/null || die "java not found (a JDK 17+ is expected on the machine)"
command -v javac >/dev/null || die "javac not found (a JDK 17+ is expected, not just a JRE)"
java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
[[ -n "$java_major" && "$java_major" -ge 17 ]] || die "java 17+ required, found: $(java -version 2>&1 | head -n1)"
log "java: $(java -version 2>&1 | head -n1)"
command -v node >/dev/null || die "node not found"
command -v npm >/dev/null || die "npm not found"
log "node: $(node --version), npm: $(npm --version 2>/dev/null)"
command -v python3 >/dev/null || die "python3 not found"

# ---------------------------------------------------------------- python venv
req_hash="$( (cat "$REQS"; python3 --version) | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.gregor-requirements.sha256"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$req_hash" ]] \
    && "$VENV/bin/python" -c 'import pytest, confluent_kafka, kafka, aiokafka' 2>/dev/null; then
    log "venv up to date: $VENV"
else
    log "creating venv $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || {
        # Debian's system python needs python3-venv for ensurepip.
        apt_install python3-venv
        python3 -m venv "$VENV"
    }
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    log "pip install -r tests/compat/requirements.txt (the Java client wheel is ~92 MB; pip caches it)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    echo "$req_hash" >"$stamp"
fi
"$VENV/bin/python" - <<'EOF'
import confluent_kafka, kafka, aiokafka, pytest
print("[install-test-deps] python clients: confluent-kafka %s (librdkafka %s), kafka-python %s, aiokafka %s, pytest %s"
      % (confluent_kafka.version(), confluent_kafka.libversion()[0], kafka.__version__, aiokafka.__version__, pytest.__version__))
EOF

# ---------------------------------------------------------------- Java client jars
jar_dir="$(ls -d "$VENV"/lib/python3*/site-packages/pyflink/lib 2>/dev/null | head -n1 || true)"
[[ -n "$jar_dir" && -d "$jar_dir" ]] || die "pyflink/lib not found in $VENV (shigawire-apache-flink-libraries not installed?)"
cp=""
for pat in 'kafka-clients*.jar' 'lz4-java*.jar' 'snappy-java*.jar' 'zstd-jni*.jar' 'slf4j-api*.jar'; do
    # shellcheck disable=SC2086
    jar="$(ls "$jar_dir"/$pat 2>/dev/null | head -n1 || true)"
    [[ -n "$jar" ]] || die "no $pat in $jar_dir"
    cp="${cp:+$cp:}$jar"
done
echo "$cp" >"$DEPS/java-classpath"
kafka_java_version="$(unzip -p "$jar_dir/kafka-clients.jar" kafka/kafka-version.properties 2>/dev/null | sed -n 's/^version=//p' || true)"
log "java classpath (kafka-clients ${kafka_java_version:-?}) written to .test-deps/java-classpath"

# ---------------------------------------------------------------- kafkajs
lock_hash="$( (cat "$NODE_DIR/package-lock.json"; node --version) | sha256sum | cut -d' ' -f1)"
node_stamp="$NODE_DIR/node_modules/.gregor-lock.sha256"
if [[ -f "$node_stamp" && "$(cat "$node_stamp")" == "$lock_hash" ]]; then
    log "node_modules up to date: $NODE_DIR/node_modules"
else
    log "npm ci in tests/compat/node (builds the native lz4 binding with node-gyp)"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
    echo "$lock_hash" >"$node_stamp"
fi
(cd "$NODE_DIR" && node -e '
  const v = require("kafkajs/package.json").version;
  require("kafkajs-snappy"); require("kafkajs-lz4"); require("@mongodb-js/zstd");
  console.log("[install-test-deps] kafkajs " + v + " with snappy, lz4 and zstd codecs");
')
log "done"
