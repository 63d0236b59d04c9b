#!/usr/bin/env bash
# Train Graphix-T5 on Spider. Extra arguments are passed on to `graphix train`
# (key=value overrides, --resume, --output-dir ...).
#
#   scripts/train_spider.sh                               # configs/default.json, this machine
#   scripts/train_spider.sh --resume                      # continue after an interruption
#   CONFIG=configs/ablation_no_graph.json scripts/train_spider.sh
#   SEGMENT_STEPS=0 LAUNCHER="accelerate launch -m" scripts/train_spider.sh   # several GPUs
#
# The run goes in segments of SEGMENT_STEPS steps (default 400, the evaluation interval),
# each a fresh process that resumes exactly from the previous checkpoint, so memory
# that one long CPU process accumulates is returned between segments. SEGMENT_STEPS=0
# runs in one process.
#
# GRAPHIX_SPIDER_DIR must point at the Spider folder (tables.json, train_spider.json, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${CONFIG:-configs/default.json}"
LAUNCHER="${LAUNCHER:-python3 -m}"
SEGMENT_STEPS="${SEGMENT_STEPS:-400}"
SEGMENT_DONE=75

if [ "$SEGMENT_STEPS" = 0 ]; then
    exec $LAUNCHER graphix train --config "$CONFIG" "$@"
fi

args=("$@")
while true; do
    status=0
    $LAUNCHER graphix train --config "$CONFIG" --segment-steps "$SEGMENT_STEPS" "${args[@]}" \
        || status=$?
    if [ "$status" -ne "$SEGMENT_DONE" ]; then
        exit "$status"
    fi
    case " ${args[*]} " in
        *" --resume "*) ;;
        *) args=(--resume "${args[@]}") ;;
    esac
done
