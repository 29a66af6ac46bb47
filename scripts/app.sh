#!/usr/bin/env bash
# One command for a fresh machine: install, then start the app on the bundled Jargon File sample corpus.
# Usage: bash scripts/app.sh [--port N]   (then open http://127.0.0.1:8501)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/hce app --sample "$@"
