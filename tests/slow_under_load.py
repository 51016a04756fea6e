"""The slow suite, again and again, beside a CPU hog: flakes show up here before CI sees them.

    python tests/slow_under_load.py --runs 10 --hogs 2

Starts ``--hogs`` busy processes (one busy loop each, as `stress --cpu 2` would), then runs
``python -m pytest -q -m slow`` ``--runs`` times in a row, stopping at the first failure and
printing its summary; the hogs are stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest (e.g. a test file)")
    args = parser.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "slow", "-p", "no:cacheprovider",
                                   *args.pytest_args], cwd=ROOT, capture_output=True, text=True)
            last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
            print(f"run {run}: exit {done.returncode} in {time.monotonic() - started:.0f} s — {last}", flush=True)
            if done.returncode != 0:
                print(done.stdout[-6000:], done.stderr[-3000:], sep="\n")
                return 1
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print(f"{args.runs} loaded runs in a row passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
