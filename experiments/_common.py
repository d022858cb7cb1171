"""Command-line flags that every training experiment shares (output, resume, seed, progress, hosts)."""

from __future__ import annotations

import argparse
import statistics
import time

from gm import parallel


def median_seconds(fn, repeats: int, *, warmup: bool = True) -> float:
    """Median wall seconds of ``fn()`` (its outputs waited for) over ``repeats`` calls, after one
    warm-up call (compilation) unless ``warmup`` is False."""
    import jax

    if warmup:
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_parser(description: str, *, out: str | None, quick_help: str, seed_help: str | None = None,
                    steps_help: str | None = "override the number of training steps",
                    classifier_dir: str | None = None, stop_unit: str = "steps") -> argparse.ArgumentParser:
    """An argument parser with the flags of a resumable training run; the caller adds its own.

    Args:
      description: the parser's description.
      out: default ``--out`` directory (None: the experiment derives one).
      quick_help: help text of ``--quick``.
      seed_help: help text of ``--seed`` (default 0).
      steps_help: help text of ``--steps``; None leaves the flag out.
      classifier_dir: default ``--classifier-dir`` (None: ``OUT/classifier``).
      stop_unit: ``--stop-after-<unit>`` stops the run as if interrupted (for resume tests).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", default=out,
                        help=None if out is not None else "output directory (default under runs/)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    if steps_help is not None:
        parser.add_argument("--steps", type=int, default=None, help=steps_help)
    parser.add_argument("--classifier-dir", default=classifier_dir,
                        help=None if classifier_dir is not None else "classifier cache (default: OUT/classifier)")
    parser.add_argument(f"--stop-after-{stop_unit}", type=int, default=None,
                        help=f"stop after this many {stop_unit}, as if interrupted (for resume tests)")
    parser.add_argument("--no-progress", action="store_true")
    parallel.add_distributed_args(parser)
    return parser


def parse_training_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv`` and join the distributed run the flags describe (a no-op on one host)."""
    args = parser.parse_args(argv)
    parallel.initialize_from_args(args)
    return args
