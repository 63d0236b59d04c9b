"""Copy a trained model folder into the package as the bundled default model.

Weights are stored in float16 to halve the size; `Text2SQL.from_pretrained` loads them
back as float32. The folder keeps `training.json` (the run's configuration) and gets a
`MODEL.md` card with the training budget and machine.

    python scripts/bundle_model.py runs/default/model [--budget-note "..."]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "graphix" / "resources" / "default_model"
MAX_BYTES = 50 * 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="model folder written by `graphix train`")
    parser.add_argument("--card", type=Path,
                        help="markdown file with the model card text (training budget, "
                             "machine, dev scores); copied to MODEL.md")
    args = parser.parse_args()

    import torch

    from graphix.model import GraphixT5ForConditionalGeneration
    from graphix.tokenizer import load_tokenizer

    model = GraphixT5ForConditionalGeneration.from_pretrained(args.source, dtype=torch.float32)
    tokenizer = load_tokenizer(args.source)

    staging = TARGET.with_name(TARGET.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.to(torch.float16).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for name in ("training.json",):
        if (args.source / name).exists():
            shutil.copy2(args.source / name, staging / name)
    if args.card:
        shutil.copy2(args.card, staging / "MODEL.md")

    size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    if size > MAX_BYTES:
        shutil.rmtree(staging)
        print(f"error: the bundled model would take {size / 2**20:.1f} MiB, over the "
              f"{MAX_BYTES / 2**20:.0f} MiB limit", file=sys.stderr)
        return 1
    shutil.rmtree(TARGET, ignore_errors=True)
    staging.rename(TARGET)
    parameters = sum(p.numel() for p in model.parameters())
    print(json.dumps({"target": str(TARGET), "bytes": size, "parameters": parameters}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
