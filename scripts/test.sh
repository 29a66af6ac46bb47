#!/usr/bin/env bash
# One command for a fresh machine: install everything the tests need, run the checks (ruff, mypy), then the
# whole suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then  # Debian's chromium drives the browser tests
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bash scripts/setup.sh --dev
.venv/bin/ruff check hce_engine ui  # lint: rules in pyproject.toml [tool.ruff]
.venv/bin/mypy                      # types: files and settings in pyproject.toml [tool.mypy]
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
