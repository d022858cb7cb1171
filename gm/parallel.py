"""Scale-out on JAX's own machinery: a mesh over the batch axis, sharded batched inference, data-parallel
training steps and multi-host start-up.

Every batched path in `gm` is a ``vmap`` of a function of one example (an evidence set, a sequence, a
record) or a training step on one global batch. This module runs those unchanged over several devices:
the batch axis is split across a one-dimensional `jax.sharding.Mesh` (``NamedSharding(mesh, P("batch"))``),
parameters are replicated (``P()``). Batched maps run under ``jax.shard_map`` (each device runs the
one-device program on its own rows); batch sums and training steps use `jax.jit` with these in/out
shardings, so XLA's SPMD partitioner inserts the all-reduces they need. Nothing here is a hand-written
collective. Every ``gm.temporal`` pass also runs inside a user's own ``jax.shard_map`` (see `gm.loops`).

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
  >>> step = parallel.data_parallel_train_step(vae.train_step, mesh)
  >>> state, metrics = step(state, batch, key)              # batch: global, B divisible by devices
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

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

AXIS = "batch"


# ------------------------------------------------------------------------------------------ meshes


def batch_mesh(devices: Sequence[jax.Device] | None = None, *, axis: str = AXIS) -> Mesh:
    """A one-dimensional mesh over ``devices`` (default: all devices of all processes).

    Args:
      devices: the devices, in order; ``None`` takes ``jax.devices()``.
      axis: the mesh axis name that the batch is split over.

    Returns:
      ``Mesh(devices, (axis,))``.
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return Mesh(np.asarray(devices, dtype=object), (axis,))


def _axis(mesh: Mesh) -> str:
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be one-dimensional (a batch axis), got axes {mesh.axis_names}")
    return mesh.axis_names[0]


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the mesh, other axes whole: ``NamedSharding(mesh, P(axis))``."""
    return NamedSharding(mesh, P(_axis(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array: ``NamedSharding(mesh, P())``."""
    return NamedSharding(mesh, P())


# ------------------------------------------------------------------------------------------ padding


def _leading(tree, name: str) -> int:
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else None for x in jax.tree_util.tree_leaves(tree)}
    if not sizes:
        raise ValueError(f"{name} has no arrays")
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"every array of {name} needs the same leading (batch) axis, "
                         f"got sizes {sorted(sizes, key=str)}")
    return sizes.pop()


def pad_batch(tree, multiple: int, *, fill: Any = "edge"):
    """Pads the leading axis of every leaf to a multiple of ``multiple``.

    Args:
      tree: a pytree of arrays sharing their leading size ``B`` (B >= 1).
      multiple: the padded size is the smallest multiple of it that is >= B.
      fill: ``"edge"`` repeats the last row (a valid example: padding with zeros could be impossible
        evidence, and a NaN in a padding row can poison a sum); or a scalar, the value of every padding
        entry (for example ``False`` for masks, so that padded sequences carry no weight).

    Returns:
      ``(padded tree, B)``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    n = _leading(tree, "tree")
    if n < 1:
        raise ValueError("tree must hold at least one example (leading size 0)")
    extra = -n % multiple
    if extra == 0:
        return tree, n

    def pad(x):
        x = jnp.asarray(x) if isinstance(x, jax.Array) else np.asarray(x)
        xp = jnp if isinstance(x, jax.Array) else np
        if isinstance(fill, str):
            if fill != "edge":
                raise ValueError(f"fill must be 'edge' or a scalar, got {fill!r}")
            rows = xp.repeat(x[-1:], extra, axis=0)
        else:
            rows = xp.full((extra,) + x.shape[1:], fill, x.dtype)
        return xp.concatenate([x, rows], axis=0)

    return jax.tree_util.tree_map(pad, tree), n


def unpad(tree, n: int):
    """The first ``n`` rows of every leaf (no copy when nothing was padded)."""
    return jax.tree_util.tree_map(lambda x: x if x.shape[0] == n else x[:n], tree)


# ------------------------------------------------------------------------------------------ placing


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _put(x, sharding: NamedSharding):
    """Places one array with ``sharding``; multi-host safe for inputs equal on every process."""
    if _is_key(x):
        impl = jax.random.key_impl(x)
        return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding), impl=impl)
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:  # already global: reshard on device
        return jax.jit(lambda a: a, out_shardings=sharding)(x)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree, mesh: Mesh):
    """Every leaf on every device of ``mesh`` (parameters, keys)."""
    sharding = replicated(mesh)
    return jax.tree_util.tree_map(lambda x: _put(x, sharding), tree)


def shard_batch(tree, mesh: Mesh, *, fill: Any = "edge"):
    """Pads the batch to a multiple of the mesh size and splits it over the mesh.

    Every process passes the same global ``tree`` (multi-host: each keeps only its devices' rows).

    Args:
      tree: a pytree of arrays with a shared leading batch axis ``B``.
      mesh: a one-dimensional mesh (`batch_mesh`).
      fill: padding, see `pad_batch`.

    Returns:
      ``(sharded tree, B)``: leaves of leading size ``ceil(B / devices) * devices``, sharded
      ``P("batch")``; pass ``B`` to `unpad`.
    """
    padded, n = pad_batch(tree, mesh.size, fill=fill)
    sharding = batch_sharding(mesh)
    return jax.tree_util.tree_map(lambda x: _put(x, sharding), padded), n


def shard_local_batch(tree, mesh: Mesh):
    """Global arrays from each process's own rows (`jax.make_array_from_process_local_data`).

    For input pipelines where every process loads a different part of the data: the global batch is the
    concatenation of the processes' batches in process order. Each process's leading size must be a
    multiple of its number of devices in ``mesh`` (no padding: rows from different processes would
    interleave with it).
    """
    sharding = batch_sharding(mesh)
    local = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])
    n = _leading(tree, "tree")
    if local == 0 or n % local:
        raise ValueError(f"tree's leading size {n} must be a multiple of this process's {local} devices in mesh")
    return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def to_host(tree):
    """NumPy copies of every leaf; on several processes, gathered from all of them first."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(get, tree)


# ------------------------------------------------------------------------------------ sharded maps


def _normalize_in_axes(in_axes, n_args: int) -> tuple:
    axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * n_args
    if len(axes) != n_args:
        raise ValueError(f"in_axes has {len(axes)} entries for {n_args} arguments")
    if any(a not in (0, None) for a in axes):
        raise ValueError(f"in_axes entries must be 0 (batched) or None (shared), got {axes}")
    if 0 not in axes:
        raise ValueError("in_axes must mark at least one argument as batched (0)")
    return axes


@functools.lru_cache(maxsize=128)
def _compiled_map(fn, mesh: Mesh, axes: tuple, chunk_size: int | None):
    batched = jax.vmap(fn, in_axes=axes)
    bs, rep = batch_sharding(mesh), replicated(mesh)
    in_shardings = tuple(bs if a == 0 else rep for a in axes)
    axis = _axis(mesh)
    specs = tuple(P(axis) if a == 0 else P() for a in axes)
    # each device runs the one-device program on its own rows (shard_map) rather than leaving the split
    # to XLA's SPMD partitioner, which on the factorial DBN smoother's loops made the 2-device run
    # slower than one device (0.51 s against 0.35 s; shard_map 0.18 s, experiments/bench_hmm.py)
    if chunk_size is None:
        mapped = jax.shard_map(batched, mesh=mesh, in_specs=specs, out_specs=P(axis))
        return jax.jit(mapped, in_shardings=in_shardings, out_shardings=bs)

    def local(*args):  # one device's rows, in chunks of chunk_size
        rows = next(x for a, arg in zip(axes, args) if a == 0 for x in jax.tree_util.tree_leaves(arg)).shape[0]
        n_chunks = rows // chunk_size
        split = [jax.tree_util.tree_map(lambda x: x.reshape((n_chunks, chunk_size) + x.shape[1:]), arg)
                 if a == 0 else arg for a, arg in zip(axes, args)]
        batched_pos = [i for i, a in enumerate(axes) if a == 0]

        def one_chunk(chunk_args):
            full = list(split)
            for i, c in zip(batched_pos, chunk_args):
                full[i] = c
            return batched(*full)

        out = jax.lax.map(one_chunk, tuple(split[i] for i in batched_pos))
        return jax.tree_util.tree_map(lambda x: x.reshape((rows,) + x.shape[2:]), out)

    mapped = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P(axis))
    return jax.jit(mapped, in_shardings=in_shardings, out_shardings=bs)


def _place_args(args, axes, mesh: Mesh, multiple: int, fill):
    batched = tuple(arg for a, arg in zip(axes, args) if a == 0)
    padded, n = pad_batch(batched, multiple, fill=fill)
    bs, rep = batch_sharding(mesh), replicated(mesh)
    it = iter(padded)
    placed = tuple(jax.tree_util.tree_map(lambda x: _put(x, bs), next(it)) if a == 0 else replicate(arg, mesh)
                   for a, arg in zip(axes, args))
    return placed, n


def sharded_map(fn: Callable, mesh: Mesh, *, in_axes: int | None | Sequence[int | None] = 0,
                chunk_size: int | None = None, fill: Any = "edge") -> Callable:
    """``jit(vmap(fn, in_axes))`` with the batch split over ``mesh`` and the shared arguments replicated.

    The returned function takes the arguments of ``fn`` with a leading batch axis ``B`` on those marked
    0 in ``in_axes`` (any B: the batch is padded with copies of its last row to a multiple of the device
    count, or of ``devices * chunk_size``, and the padding is dropped from the outputs). Its outputs have
    the leading axis ``B`` and are sharded ``P("batch")`` (exactly so when no padding was needed; after
    padding they are the first B rows of such arrays). One compilation per ``(fn, mesh, in_axes,
    chunk_size)`` and argument shapes.

    Args:
      fn: a function of one example, e.g. ``bn.marginals(net, ev)``; keyword options are closed over
        (``functools.partial``).
      mesh: a one-dimensional mesh (`batch_mesh`).
      in_axes: per positional argument, 0 (batched) or None (shared, replicated); an int applies to all.
      chunk_size: if given, each device runs its rows ``chunk_size`` at a time (``lax.map`` over chunks
        of ``vmap``) to bound memory, as `gm.bn.map_batched` does on one device.
      fill: padding, see `pad_batch`.

    Example:
      >>> post = sharded_map(bn.marginals, mesh, in_axes=(None, 0))(net, evs)   # {name: f32[B, card]}
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    multiple = mesh.size * (chunk_size or 1)

    def call(*args):
        axes = _normalize_in_axes(in_axes, len(args))
        placed, n = _place_args(args, axes, mesh, multiple, fill)
        return unpad(_compiled_map(fn, mesh, axes, chunk_size)(*placed), n)

    call.__doc__ = f"sharded_map({getattr(fn, '__name__', fn)!s}) over mesh axis {mesh.axis_names}"
    return call


@functools.lru_cache(maxsize=128)
def _compiled_sum(fn, mesh: Mesh, axes: tuple):
    batched = jax.vmap(fn, in_axes=axes)
    bs, rep = batch_sharding(mesh), replicated(mesh)

    def total(weights, *args):
        out = batched(*args)

        def weighted_sum(x):
            w = weights.reshape(weights.shape + (1,) * (x.ndim - 1))
            return jnp.sum(jnp.where(w, x, jnp.zeros((), x.dtype)), axis=0)

        return jax.tree_util.tree_map(weighted_sum, out)

    in_shardings = (bs,) + tuple(bs if a == 0 else rep for a in axes)
    return jax.jit(total, in_shardings=in_shardings, out_shardings=rep)


def sharded_sum(fn: Callable, mesh: Mesh, *, in_axes: int | None | Sequence[int | None] = 0) -> Callable:
    """``sum_b fn(x_b)`` over a batch split across ``mesh``; the result is replicated.

    Each device sums its rows and XLA all-reduces the partial sums. The batch is padded as in
    `sharded_map`, and padding rows are excluded from the sum (``where``, so even a NaN in a padding row
    cannot leak). For sufficient statistics: expected counts, maximum-likelihood counts over records.

    Example:
      >>> counts = sharded_sum(lambda x: jax.nn.one_hot(x, 3), mesh)(labels)   # f32[3]
    """

    def call(*args):
        axes = _normalize_in_axes(in_axes, len(args))
        placed, n = _place_args(args, axes, mesh, mesh.size, "edge")
        size = _leading(placed[axes.index(0)], "batch")
        weights = _put(np.arange(size) < n, batch_sharding(mesh))
        return _compiled_sum(fn, mesh, axes)(weights, *placed)

    return call


# -------------------------------------------------------------------------------- applied: gm.bn


def _default_mesh(mesh):
    return batch_mesh() if mesh is None else mesh


def sharded_marginals(net, evs, *, mesh: Mesh | None = None, chunk_size: int | None = None):
    """`gm.bn.marginals` of every evidence set in ``evs: int32[B, n_vars]``, split over ``mesh``.

    Returns:
      ``{name: f32[B, card]}``, equal to ``jax.vmap(bn.marginals, in_axes=(None, 0))(net, evs)``.
    """
    from gm.bn import inference

    return sharded_map(inference.marginals, _default_mesh(mesh), in_axes=(None, 0), chunk_size=chunk_size)(net, evs)


def sharded_log_evidence(net, evs, *, mesh: Mesh | None = None, chunk_size: int | None = None):
    """`gm.bn.log_evidence` of every evidence set in ``evs: int32[B, n_vars]``: ``f32[B]``."""
    from gm.bn import inference

    return sharded_map(inference.log_evidence, _default_mesh(mesh), in_axes=(None, 0),
                       chunk_size=chunk_size)(net, evs)


# -------------------------------------------------------------------------- applied: gm.learn


@functools.lru_cache(maxsize=64)
def _compiled_counts(structure, mesh: Mesh):
    from gm.learn.estimators import family_counts

    return jax.jit(lambda data, weights: family_counts(structure, data, weights=weights),
                   out_shardings=replicated(mesh))


def sharded_family_counts(net_or_structure, data, *, weights=None, mesh: Mesh | None = None):
    """`gm.learn.family_counts` of records split over ``mesh``: each device scatter-adds its rows, XLA
    all-reduces the tables (replicated result). Padding rows get weight 0.

    Args:
      net_or_structure: a `gm.bn.BayesNet` or its `Structure`.
      data: ``int32[N, n_vars]`` records (-1 missing); weights: optional ``f32[N]``.

    Returns:
      A tuple of ``f32[*parent cards, card]`` count tables, as `gm.learn.family_counts`.

    Example:
      >>> net = learn.mle(net, data)  # single device; sharded: learn.normalize_counts on these counts
      >>> counts = parallel.sharded_family_counts(net, data, mesh=parallel.batch_mesh())
    """
    from gm.learn.estimators import as_structure

    mesh = _default_mesh(mesh)
    structure = as_structure(net_or_structure)
    data = np.asarray(data)
    weights = np.ones(data.shape[0], np.float32) if weights is None else np.asarray(weights, np.float32)
    if weights.shape != (data.shape[0],):
        raise ValueError(f"weights must have shape ({data.shape[0]},), got {weights.shape}")
    data, _ = pad_batch(data, mesh.size)
    weights, _ = pad_batch(weights, mesh.size, fill=0.0)
    sharding = batch_sharding(mesh)
    return _compiled_counts(structure, mesh)(_put(data, sharding), _put(weights, sharding))


# -------------------------------------------------------------------------- applied: gm.temporal


def _smooth(initial, transition, log_lik, mask):
    from gm.temporal.hmm import smoother

    return smoother(initial, transition, log_lik, mask=mask)


def _smooth_unmasked(initial, transition, log_lik):
    return _smooth(initial, transition, log_lik, None)


def sharded_smoother(initial, transition, log_liks, mask=None, *, mesh: Mesh | None = None):
    """`gm.temporal.smoother` of every sequence, split over ``mesh``.

    Args:
      initial: f32[K]; transition: f32[K, K] (shared, replicated).
      log_liks: f32[B, T, K] per-step log-likelihoods.
      mask: optional bool[B, T], False on padding steps.

    Returns:
      ``Posterior(log_evidence f32[B], marginals f32[B, T, K])``.
    """
    mesh = _default_mesh(mesh)
    if mask is None:
        return sharded_map(_smooth_unmasked, mesh, in_axes=(None, None, 0))(initial, transition, log_liks)
    return sharded_map(_smooth, mesh, in_axes=(None, None, 0, 0))(initial, transition, log_liks, mask)


@functools.lru_cache(maxsize=64)
def _compiled_em_step(family, mesh: Mesh):
    from gm.temporal import em

    bs, rep = batch_sharding(mesh), replicated(mesh)
    return jax.jit(functools.partial(em._em_step, family), in_shardings=(rep, bs, bs, rep), out_shardings=rep)


def sharded_em_step(family, params, obs, mask=None, *, mesh: Mesh | None = None, prior=None):
    """One Baum-Welch iteration (`gm.temporal.em_step`) with the sequences split over ``mesh``.

    The E-step runs on each device's sequences; the expected counts are summed across devices by the
    all-reduce XLA inserts for the batch sums, and the M-step result is replicated. Padding sequences
    are fully masked, so they add nothing.

    Args:
      family: the emission family (static).
      params: ``HMMParams`` (replicated).
      obs: observations with leading [B, T] axes.
      mask: optional bool[B, T].
      mesh: the mesh (default: all devices).
      prior: ``Prior`` (default flat).

    Returns:
      ``(new params, log p(obs | params), log p(params))`` as `gm.temporal.em_step`.
    """
    from gm.temporal import em

    mesh = _default_mesh(mesh)
    obs = jnp.asarray(obs)
    if obs.ndim < 2:
        raise ValueError(f"obs must have leading [B, T] axes, got shape {obs.shape}")
    if mask is None:
        mask = np.ones(obs.shape[:2], bool)
    obs, n = pad_batch(obs, mesh.size)
    mask, _ = pad_batch(jnp.asarray(mask, bool), mesh.size, fill=False)
    bs = batch_sharding(mesh)
    return _compiled_em_step(family, mesh)(replicate(params, mesh), _put(obs, bs), _put(mask, bs),
                                           replicate(em.Prior() if prior is None else prior, mesh))


def sharded_fit(family, params, obs, mask=None, *, mesh: Mesh | None = None, num_iters: int = 50,
                prior=None, tol: float | None = None):
    """Baum-Welch (`gm.temporal.fit`) with every E-step sharded over ``mesh``: ``(params, history)``."""
    history = []
    for _ in range(num_iters):
        new, ll, lp = sharded_em_step(family, params, obs, mask, mesh=mesh, prior=prior)
        history.append(float(ll + lp))
        params = new
        if tol is not None and len(history) > 1 and history[-1] - history[-2] < tol:
            break
    return params, jnp.asarray(history)


# ------------------------------------------------------------------------------------ training


def data_parallel_train_step(step_fn: Callable, mesh: Mesh, *, batch_argnums: int | Sequence[int] = 1,
                             donate_state: bool = False) -> Callable:
    """A training step with the batch split over ``mesh`` and everything else replicated.

    ``step_fn(state, batch, key) -> (state, metrics)`` (any signature whose batch arguments carry a
    leading example axis) is jitted with ``in_shardings`` ``P("batch")`` on the batch arguments and
    ``P()`` on the others, and replicated outputs. The loss is still the mean over the global batch, so
    the update equals the single-device step on the same batch (up to float32 summation order); XLA
    all-reduces the gradients. The global batch size must be a multiple of the device count (padding
    would change the loss).

    Args:
      step_fn: the step, e.g. `gm.deep.vae.train_step` (already jitted is fine).
      mesh: a one-dimensional mesh.
      batch_argnums: positions of the batched arguments.
      donate_state: donate argument 0's buffers (saves memory; the old state is invalid afterwards).

    Example:
      >>> step = data_parallel_train_step(vae.train_step, batch_mesh())
      >>> state, metrics = step(state, {"image": images[:256], "label": labels[:256]}, key)
    """
    batch_argnums = (batch_argnums,) if isinstance(batch_argnums, int) else tuple(batch_argnums)
    bs, rep = batch_sharding(mesh), replicated(mesh)
    compiled: dict[int, Callable] = {}

    def call(*args):
        n_args = len(args)
        if any(i >= n_args for i in batch_argnums):
            raise ValueError(f"batch_argnums {batch_argnums} out of range for {n_args} arguments")
        for i in batch_argnums:
            b = _leading(args[i], f"argument {i} (batch)")
            if b % mesh.size:
                raise ValueError(f"the global batch (argument {i}) has {b} examples, not a multiple of the "
                                 f"{mesh.size} devices in mesh")
        if n_args not in compiled:
            shardings = tuple(bs if i in batch_argnums else rep for i in range(n_args))
            compiled[n_args] = jax.jit(step_fn, in_shardings=shardings, out_shardings=rep,
                                       donate_argnums=(0,) if donate_state else ())
        placed = tuple(jax.tree_util.tree_map(lambda x: _put(x, bs if i in batch_argnums else rep), a)
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


# ---------------------------------------------------------------------------------- multi-host


def add_distributed_args(parser):
    """Adds ``--coordinator HOST:PORT``, ``--num-processes N`` and ``--process-id I`` to an argparse parser."""
    group = parser.add_argument_group("multi-host (jax.distributed)")
    group.add_argument("--coordinator", default=None,
                       help="address HOST:PORT of process 0's coordinator; omit for a single process")
    group.add_argument("--num-processes", type=int, default=None, help="number of processes in the job")
    group.add_argument("--process-id", type=int, default=None, help="this process's index, 0 .. N-1")
    return parser


def initialize_from_args(args) -> bool:
    """Calls `jax.distributed.initialize` when ``args.coordinator`` is set (no-op otherwise).

    Must run before any JAX computation. Returns whether the distributed system was initialised.
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
