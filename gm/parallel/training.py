"""Data-parallel training steps: the global batch split over a mesh, the state replicated, the update
equal to the single-device one (XLA all-reduces the gradients)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
from jax.sharding import Mesh

from gm.parallel.mesh import batch_mesh, batch_sharding, leading_size, place, replicated

__all__ = ["data_parallel_over_devices", "data_parallel_train_step"]


# ------------------------------------------------------------------------------------ training


def data_parallel_train_step(step_fn: Callable, mesh: Mesh, *, batch_argnums: int | Sequence[int] = 1,
                             donate_state: bool = False) -> Callable:
    """A training step with the batch split over ``mesh`` and everything else replicated.

    ``step_fn(key, config, state, batch) -> (state, metrics)`` (any signature whose batch arguments carry a
    leading example axis; a config registered as a static pytree has no leaves to place) is jitted with ``in_shardings`` ``P("batch")`` on the batch arguments and
    ``P()`` on the others, and replicated outputs. The loss is still the mean over the global batch, so
    the update equals the single-device step on the same batch (up to float32 summation order); XLA
    all-reduces the gradients. The global batch size must be a multiple of the device count (padding
    would change the loss).

    Args:
      step_fn: the step, e.g. `gm.deep.vae.train_step` (already jitted is fine).
      mesh: a one-dimensional mesh.
      batch_argnums: positions of the batched arguments.
      donate_state: donate argument 0's buffers (saves memory; the old state is invalid afterwards).

    Examples:
      >>> step = data_parallel_train_step(vae.train_step, batch_mesh(), batch_argnums=3)
      >>> state, metrics = step(key, config, state, {"image": images[:256], "label": labels[:256]})
    """
    batch_argnums = (batch_argnums,) if isinstance(batch_argnums, int) else tuple(batch_argnums)
    bs, rep = batch_sharding(mesh), replicated(mesh)
    compiled: dict[int, Callable] = {}

    def call(*args):
        n_args = len(args)
        if any(i >= n_args for i in batch_argnums):
            raise ValueError(f"batch_argnums {batch_argnums} out of range for {n_args} arguments")
        for i in batch_argnums:
            b = leading_size(args[i], f"argument {i} (batch)")
            if b % mesh.size:
                raise ValueError(f"the global batch (argument {i}) has {b} examples, not a multiple of the "
                                 f"{mesh.size} devices in mesh")
        if n_args not in compiled:
            shardings = tuple(bs if i in batch_argnums else rep for i in range(n_args))
            compiled[n_args] = jax.jit(step_fn, in_shardings=shardings, out_shardings=rep,
                                       donate_argnums=(0,) if donate_state else ())
        placed = tuple(jax.tree_util.tree_map(lambda x: place(x, bs if i in batch_argnums else rep), a)
                       for i, a in enumerate(args))
        return compiled[n_args](*placed)

    return call


def data_parallel_over_devices(step_fn: Callable, batch_size: int, *, batch_argnums: int | Sequence[int] = 1):
    """``step_fn`` made data-parallel over the most local devices that divide ``batch_size``.

    On one device (or when only 1 divides the batch) this is ``step_fn`` itself, so experiments call it
    unconditionally and keep their global batch size.
    """
    devices = jax.devices()
    n = max(d for d in range(1, len(devices) + 1) if batch_size % d == 0)
    if n == 1:
        return step_fn
    return data_parallel_train_step(step_fn, batch_mesh(devices[:n]), batch_argnums=batch_argnums)


