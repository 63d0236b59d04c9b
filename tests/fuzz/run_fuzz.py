"""Run the property tests of tests/test_fuzz_properties.py with many generated inputs.

    nice -n 19 python tests/fuzz/run_fuzz.py --examples 2000

Each property gets `--examples` random inputs (a fresh seed per run unless --seed is
given). The script prints, per property, the inputs tried, the seconds taken and the
outcome, then the totals, and exits with status 1 when any property failed. Failing
inputs are in the pytest output above the table.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000,
                        help="generated inputs per property (default: 2000)")
    parser.add_argument("--seed", type=int, help="hypothesis seed, for a repeatable run")
    parser.add_argument("-k", dest="select", help="run only the properties matching this pytest -k")
    args = parser.parse_args()

    command = [sys.executable, "-m", "pytest", str(TESTS / "test_fuzz_properties.py"), "-q",
               "-p", "no:cacheprovider", "--hypothesis-show-statistics", "-rf"]
    if args.seed is not None:
        command.append(f"--hypothesis-seed={args.seed}")
    if args.select:
        command += ["-k", args.select]
    env = {**os.environ, "GRAPHIX_FUZZ_EXAMPLES": str(args.examples), "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    completed = subprocess.run(command, cwd=TESTS.parent, env=env, capture_output=True,
                               text=True)
    elapsed = time.monotonic() - started
    output = completed.stdout + completed.stderr
    print(output)

    # With --hypothesis-show-statistics hypothesis prints, per test, one block that
    # starts with the test id and gives "N passing, M failing, and K invalid test cases"
    # and "(S seconds)" for each phase.
    total = 0
    print(f"{'property':<48} {'inputs':>7} {'failing':>8} {'seconds':>8}")
    blocks = re.split(r"^\S*test_fuzz_properties\.py::(\w+):$", output, flags=re.MULTILINE)
    for name, block in zip(blocks[1::2], blocks[2::2]):
        counts = re.findall(r"(\d+) passing, (\d+) failing, and \d+ invalid", block)
        seconds = sum(float(value) for value in re.findall(r"phase \(([\d.]+) seconds\)", block))
        inputs = sum(int(passing) + int(failing) for passing, failing in counts)
        failing = sum(int(failing) for _, failing in counts)
        total += inputs
        print(f"{name:<48} {inputs:>7} {failing:>8} {seconds:>8.1f}")
    print(f"total inputs {total}, wall time {elapsed:.0f} s, pytest exit status "
          f"{completed.returncode}")
    return 0 if completed.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
