#!/usr/bin/env bash
# The README's test command: install what the tests need, then run them.
# Debian 12, Python 3.11, root; needs PyPI and Debian's package mirrors only.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real Prometheus server the adapter and end-to-end tests start on a loopback port, and the
# real browser the report's test drives with Playwright (whose own browser downloads are not used).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v openssl >/dev/null \
    || ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus openssl chromium >/dev/null
fi
export SETPOINT_REQUIRE_PROMETHEUS=1  # a missing server fails the tests instead of skipping them
export SETPOINT_REQUIRE_BROWSER=1  # likewise a missing chromium or playwright for the report's browser test

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
# Bytecode cached on disk, whatever this machine's default: with PYTHONDONTWRITEBYTECODE set (some
# CI images and sandboxes set it), every process the suite starts (its workers, ~300 `setpoint`
# commands, their worker processes) compiled Setpoint's sources again (~0.3 s of CPU each), and
# every xdist worker rewrote every test module's asserts (~10 s each). Compiled once here, on
# every core; pytest caches its rewritten test modules itself.
unset PYTHONDONTWRITEBYTECODE
python3 -m compileall -q -j 0 controller simulators tests bench >/dev/null
# pytest's rewritten test modules (tests/**/__pycache__/*-pytest-*.pyc), written once here by two
# collect-only processes over alternate halves of the test files (both cores): from a fresh clone
# the six workers below each rewrote all ~340 modules at once (~19 s of CPU each instead of ~9).
# Collection errors are left to the run below to report.
mapfile -t test_files < <(find tests -name 'test_*.py' | sort)
for half in 0 1; do
  python3 -m pytest -p no:cacheprovider --collect-only -q \
      $(for i in "${!test_files[@]}"; do (( i % 2 == half )) && echo "${test_files[i]}"; done) >/dev/null 2>&1 &
done
wait
# Parallel workers (pytest-xdist): half the workers' time is in tests that mostly wait (servers
# starting, live loops on real clocks: ~1.6 workers at a time), so three workers a core keep the
# two cores busy (four left them ~1.55 cores busy on average). --dist loadgroup keeps the tests that share a
# module-scoped fixture on one worker (tests/conftest.py). SETPOINT_TEST_WORKERS=0 runs in one
# process; arguments given to this script come last and win (e.g. -n0).
python3 -m pytest -p no:cacheprovider -n "${SETPOINT_TEST_WORKERS:-6}" --dist loadgroup "$@"
