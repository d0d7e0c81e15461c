#!/usr/bin/env bash
# Set up (if needed), then the main job: convert real models, save packages, load them in a
# process where torch cannot be imported, run them, and print validation metrics against PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
python examples/end_to_end.py "$@"
