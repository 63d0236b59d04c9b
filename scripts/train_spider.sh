#!/usr/bin/env bash
# Train Graphix-T5 on Spider. Extra arguments are passed on as key=value overrides.
#
#   scripts/train_spider.sh                               # configs/default.json, this machine
#   scripts/train_spider.sh --resume                      # continue after an interruption
#   LAUNCHER="accelerate launch" scripts/train_spider.sh  # several GPUs, same loop
#
# GRAPHIX_SPIDER_DIR must point at the Spider folder (tables.json, train_spider.json, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${CONFIG:-configs/default.json}"
LAUNCHER="${LAUNCHER:-python3 -m}"
exec $LAUNCHER graphix train --config "$CONFIG" "$@"
