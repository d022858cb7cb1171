"""Scale-out on JAX's own machinery: a mesh over the batch axis, sharded batched inference, data-parallel
training steps and multi-host start-up.

Every batched path in `gm` is a ``vmap`` of a function of one example (an evidence set, a sequence, a
record) or a training step on one global batch. This package runs those unchanged over several devices:
the batch axis is split across a one-dimensional `jax.sharding.Mesh` (``NamedSharding(mesh, P("batch"))``),
parameters are replicated (``P()``). Batched maps run under ``jax.shard_map`` (each device runs the
one-device program on its own rows); batch sums and training steps use `jax.jit` with these in/out
shardings, so XLA's SPMD partitioner inserts the all-reduces they need. Nothing here is a hand-written
collective. Every ``gm.temporal`` pass also runs inside a user's own ``jax.shard_map`` (see `gm.loops`).

Modules: `gm.parallel.mesh` (meshes, padding, placement), `gm.parallel.maps` (sharded maps and sums),
`gm.parallel.networks` (``gm.bn`` / ``gm.learn`` batches), `gm.parallel.sequences` (``gm.temporal``
batches), `gm.parallel.training` (data-parallel train steps), `gm.parallel.distributed` (multi-host
flags); every public name is re-exported here.

* `batch_mesh`, `batch_sharding`, `replicated`: the mesh and its two shardings.
* `shard_batch` pads a batch to a multiple of the device count (with copies of its last row, a valid
  example, never zeros that could be impossible evidence) and places it; `unpad` drops the padding;
  `replicate` places parameters; `to_host` gathers a (possibly multi-host) result into NumPy.
* `sharded_map(fn, mesh, in_axes=...)`: ``jit(vmap(fn))`` with the batch sharded, optionally chunked per
  device (``lax.map`` over chunks) for batches that do not fit at once.
* `sharded_sum(fn, mesh)`: ``sum_b fn(x_b)`` over a sharded batch; padding rows get weight 0, the result
  is replicated (XLA all-reduces the per-device partial sums). Counting statistics (EM E-steps, maximum
  likelihood counts over records) are such sums.
* Applied: `sharded_marginals` / `sharded_log_evidence` (``gm.bn`` over evidence sets),
  `sharded_smoother` (``gm.temporal`` over sequences), `sharded_em_step` / `sharded_fit` (Baum-Welch with
  the batch of sequences sharded).
* `data_parallel_train_step(step_fn, mesh)`: a ``train_step(state, batch, key)`` with the batch sharded and
  the state replicated; the global batch (and so the loss and the update) is the single-device one.
* Multi-host: `add_distributed_args` / `initialize_from_args` wrap `jax.distributed.initialize`. After it,
  `jax.devices()` lists every process's devices, `batch_mesh()` spans them all, and every process runs the
  same program on the same global inputs (`shard_batch` and `replicate` then build global arrays with
  `jax.make_array_from_callback`; `shard_local_batch` takes per-process data instead). On CPU the
  cross-process collectives use gloo, JAX's default (``jax_cpu_collectives_implementation``).

Simulate devices on one CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX
starts (or ``jax.config.update("jax_num_cpu_devices", 4)``).

Example:
  >>> from gm import bn, parallel
  >>> mesh = parallel.batch_mesh()                          # all devices, axis "batch"
  >>> post = parallel.sharded_marginals(net, evs, mesh=mesh)   # evs: int32[B, n_vars], any B
  >>> step = parallel.data_parallel_train_step(vae.train_step, mesh, batch_argnums=3)
  >>> state, metrics = step(key, config, state, batch)      # batch: global, B divisible by devices
"""

from gm.parallel.distributed import add_distributed_args, initialize_from_args
from gm.parallel.maps import sharded_map, sharded_sum
from gm.parallel.mesh import (
    batch_mesh,
    batch_sharding,
    pad_batch,
    replicate,
    replicated,
    shard_batch,
    shard_local_batch,
    to_host,
    unpad,
)
from gm.parallel.networks import sharded_family_counts, sharded_log_evidence, sharded_marginals
from gm.parallel.sequences import sharded_em_step, sharded_fit, sharded_smoother
from gm.parallel.training import data_parallel_over_devices, data_parallel_train_step

__all__ = [
    "batch_mesh",
    "batch_sharding",
    "replicated",
    "pad_batch",
    "shard_batch",
    "shard_local_batch",
    "replicate",
    "unpad",
    "to_host",
    "sharded_map",
    "sharded_sum",
    "sharded_marginals",
    "sharded_log_evidence",
    "sharded_family_counts",
    "sharded_smoother",
    "sharded_em_step",
    "sharded_fit",
    "data_parallel_train_step",
    "data_parallel_over_devices",
    "add_distributed_args",
    "initialize_from_args",
]
