"""``graphix train``: train Graphix-T5 on Spider from a config file plus overrides."""

from __future__ import annotations

import argparse

SEGMENT_DONE = 75  # sysexits EX_TEMPFAIL: not finished, resume to continue

HELP = "train a Graphix-T5 model on Spider (resumable; runs under `accelerate launch` too)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from graphix.config import describe
    from graphix.training_config import TrainConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "configuration keys (set in the JSON file or as key=value):\n" + describe(
        TrainConfig)
    parser.add_argument("--config", help="JSON file of configuration keys (see below)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in output_dir from its latest checkpoint; "
                             "the stored configuration is used, overrides still apply")
    parser.add_argument("--segment-steps", type=int, metavar="N",
                        help="exit with status 75 after N steps of this process, checkpoint "
                             "written; rerun with --resume to continue")
    parser.add_argument("--output-dir", help="run folder (same as output_dir=...)")
    parser.add_argument("--spider-dir", help="Spider folder (same as spider_dir=...; default "
                                             "$GRAPHIX_SPIDER_DIR)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="configuration overrides, applied after the file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from graphix.config import load_config
    from graphix.training import Trainer, load_run_config
    from graphix.training_config import TrainConfig

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.spider_dir:
        overrides.append(f"spider_dir={args.spider_dir}")
    if args.resume:
        base = load_config(TrainConfig, args.config, overrides)
        config = load_run_config(Path(base.output_dir), overrides)
    else:
        config = load_config(TrainConfig, args.config, overrides)
    model_dir = Trainer(config).run(resume=args.resume, segment_steps=args.segment_steps)
    if model_dir is None:
        print(f"segment finished; continue with: graphix train --resume "
              f"--output-dir {config.output_dir}")
        return SEGMENT_DONE
    print(f"model saved to {model_dir}")
    return 0
