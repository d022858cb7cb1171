"""Multi-host start-up: command-line flags for `jax.distributed.initialize` and the CPU collectives."""

from __future__ import annotations

import jax

__all__ = ["add_distributed_args", "initialize_from_args"]


# ---------------------------------------------------------------------------------- multi-host


def add_distributed_args(parser):
    """Adds ``--coordinator HOST:PORT``, ``--num-processes N`` and ``--process-id I`` to an argparse parser.

    Args:
      parser: an `argparse.ArgumentParser`.

    Returns:
      The same parser (for chaining).

    Examples:
      >>> import argparse
      >>> parser = add_distributed_args(argparse.ArgumentParser())
      >>> args = parser.parse_args(["--coordinator", "10.0.0.1:1234", "--num-processes", "2", "--process-id", "0"])
      >>> args.coordinator, args.num_processes, args.process_id
      ('10.0.0.1:1234', 2, 0)
    """
    group = parser.add_argument_group("multi-host (jax.distributed)")
    group.add_argument("--coordinator", default=None,
                       help="address HOST:PORT of process 0's coordinator; omit for a single process")
    group.add_argument("--num-processes", type=int, default=None, help="number of processes in the job")
    group.add_argument("--process-id", type=int, default=None, help="this process's index, 0 .. N-1")
    return parser


def initialize_from_args(args) -> bool:
    """Calls `jax.distributed.initialize` when ``args.coordinator`` is set (no-op otherwise).

    Must run before any JAX computation. Returns whether the distributed system was initialised.

    Args:
      args: parsed arguments with ``coordinator``, ``num_processes`` and ``process_id`` (see
        `add_distributed_args`).

    Returns:
      True when `jax.distributed.initialize` ran, False for a single process.

    Raises:
      ValueError: a process count or id without a coordinator (or the reverse), or an id out of range.

    Examples:
      >>> import argparse
      >>> initialize_from_args(add_distributed_args(argparse.ArgumentParser()).parse_args([]))   # one process
      False
    """
    coordinator = getattr(args, "coordinator", None)
    num, pid = getattr(args, "num_processes", None), getattr(args, "process_id", None)
    if coordinator is None:
        if num not in (None, 1) or pid not in (None, 0):
            raise ValueError("--num-processes / --process-id need --coordinator HOST:PORT")
        return False
    if num is None or pid is None:
        raise ValueError("--coordinator needs --num-processes and --process-id")
    if not 0 <= pid < num:
        raise ValueError(f"--process-id must be in [0, {num}), got {pid}")
    _use_gloo_on_cpu()
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num, process_id=pid)
    return True


def _use_gloo_on_cpu():
    """CPU collectives across processes need an implementation: gloo (the default of the JAX 0.10 we test
    with; set explicitly in case a release has none). A user's own choice (e.g. "mpi") is kept."""
    try:
        if not jax.config.jax_cpu_collectives_implementation:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:  # a JAX without the option
        pass
