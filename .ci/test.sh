#!/usr/bin/env bash
# The README's test command: install what the tests need, then run them.
# Debian 12, Python 3.11, root. Needs network access to PyPI and Debian's package mirrors only.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
python3 -m pytest -q -p no:cacheprovider "$@"
