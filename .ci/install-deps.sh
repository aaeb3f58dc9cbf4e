#!/usr/bin/env bash
# Installs the third-party clients and brokers the interop tests and
# benchmarks use. Idempotent: skips what is already there.
set -euo pipefail

need_apt=()
command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
# Headless browser for the admin console test.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# RS256 test keys are made with the openssl command (tests/src/security.rs).
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The bridge's kafka backend builds librdkafka from source (rdkafka-sys,
# bundled; Debian's librdkafka-dev 2.0.2 is older than rdkafka-sys needs).
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# mosquitto's Debian package starts a system broker on 1883; tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop mosquitto >/dev/null 2>&1 || true; fi
pkill -x mosquitto >/dev/null 2>&1 || true

python3 -m pip install -q --disable-pip-version-check -r .ci/requirements.txt
