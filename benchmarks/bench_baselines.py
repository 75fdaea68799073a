"""Time ``bandit-bench baselines`` at its defaults (K=5, delta=0.2, T=100, 1000 episodes).

Run: ``.venv/bin/python benchmarks/bench_baselines.py``. In-process, best of 5, so the figure
leaves out interpreter start-up and imports (about 0.2 s on top, measured with ``time``).
"""

from __future__ import annotations

import contextlib
import io
import time

from bandit_bench.cli.commands import main

ARGV = ["baselines", "--k", "5", "--delta", "0.2", "--horizon", "100", "--episodes", "1000", "--seed", "0"]


def best_of(repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        # The table goes to a buffer: printing it is not what is being timed.
        with contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            code = main(ARGV)
            times.append(time.perf_counter() - start)
        if code != 0:
            raise SystemExit(f"bandit-bench {' '.join(ARGV)} exited with {code}")
    return min(times)


if __name__ == "__main__":
    print(f"bandit-bench {' '.join(ARGV)}: best of 5 {best_of():.3f} s")
