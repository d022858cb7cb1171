"""Meshes, padding and placement: the batch axis split over a one-dimensional `jax.sharding.Mesh`.

`batch_mesh`, `batch_sharding`, `replicated`: the mesh and its two shardings. `pad_batch` / `unpad`: pad a
batch to a multiple of the device count with copies of its last row (a valid example, never zeros that
could be impossible evidence) and drop the padding again. `place`, `replicate`, `shard_batch`,
`shard_local_batch`: put arrays on the mesh (multi-host safe); `to_host` gathers a result into NumPy.

The examples run on any number of devices (one CPU included): a batch of B rows is padded to
ceil(B / devices) * devices rows and split evenly.

Examples:
    >>> mesh = batch_mesh()                                     # every device, one axis "batch"
    >>> x, n = shard_batch(jnp.arange(6.0), mesh)               # padded with copies of the last row
    >>> y = jax.jit(lambda a: 2 * a)(x)                         # runs sharded over the mesh
    >>> unpad(to_host(y), n).tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["AXIS", "batch_mesh", "batch_sharding", "default_mesh", "leading_size", "mesh_axis", "pad_batch",
           "place", "replicate", "replicated", "shard_batch", "shard_local_batch", "to_host", "unpad"]

AXIS = "batch"


# ------------------------------------------------------------------------------------------ meshes


def batch_mesh(devices: Sequence[jax.Device] | None = None, *, axis: str = AXIS) -> Mesh:
    """A one-dimensional mesh over ``devices`` (default: all devices of all processes).

    Args:
      devices: the devices, in order; ``None`` takes ``jax.devices()``.
      axis: the mesh axis name that the batch is split over.

    Returns:
      ``Mesh(devices, (axis,))``.

    Raises:
      ValueError: an empty device list.

    Examples:
      >>> mesh = batch_mesh()
      >>> mesh.axis_names, mesh.size == jax.device_count()
      (('batch',), True)
      >>> dict(batch_mesh(jax.devices()[:1], axis="data").shape)
      {'data': 1}
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return Mesh(np.asarray(devices, dtype=object), (axis,))


def mesh_axis(mesh: Mesh) -> str:
    """The one axis name of a one-dimensional mesh (a ValueError for any other mesh).

    Args:
      mesh: a `jax.sharding.Mesh`.

    Returns:
      Its axis name.

    Raises:
      ValueError: a mesh with more or fewer than one axis.

    Examples:
      >>> mesh_axis(batch_mesh(axis="data"))
      'data'
    """
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be one-dimensional (a batch axis), got axes {mesh.axis_names}")
    return mesh.axis_names[0]


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the mesh, other axes whole: ``NamedSharding(mesh, P(axis))``.

    Args:
      mesh: a one-dimensional mesh.

    Returns:
      The `jax.sharding.NamedSharding`.

    Examples:
      >>> batch_sharding(batch_mesh()).spec == P("batch")
      True
    """
    return NamedSharding(mesh, P(mesh_axis(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array: ``NamedSharding(mesh, P())``.

    Args:
      mesh: a mesh.

    Returns:
      The `jax.sharding.NamedSharding`.

    Examples:
      >>> replicated(batch_mesh()).spec == P()
      True
    """
    return NamedSharding(mesh, P())


# ------------------------------------------------------------------------------------------ padding


def leading_size(tree, name: str) -> int:
    """The leading (batch) axis length shared by every array of ``tree``; a ValueError naming ``name`` if
    the arrays disagree or have none.

    Args:
      tree: a pytree of arrays.
      name: the argument's name, for the error message.

    Returns:
      The shared leading size B.

    Raises:
      ValueError: no arrays, a scalar leaf, or leaves of different leading sizes.

    Examples:
      >>> leading_size({"x": np.zeros((5, 2)), "mask": np.ones(5, bool)}, "batch")
      5
      >>> leading_size({"x": np.zeros((5, 2)), "y": np.zeros(4)}, "batch")
      Traceback (most recent call last):
      ...
      ValueError: every array of batch needs the same leading (batch) axis, got sizes [4, 5]
    """
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

    Raises:
      ValueError: ``multiple < 1``, an empty batch, or an unknown ``fill``.

    Examples:
      >>> padded, n = pad_batch({"x": np.arange(5), "mask": np.ones(5, bool)}, 4)
      >>> padded["x"].tolist(), n                             # the last row repeated
      ([0, 1, 2, 3, 4, 4, 4, 4], 5)
      >>> pad_batch(np.ones(3, bool), 4, fill=False)[0].tolist()
      [True, True, True, False]
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    n = leading_size(tree, "tree")
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


def unpad(tree, size: int):
    """The first ``size`` rows of every leaf (no copy when nothing was padded); undoes `pad_batch`.

    Args:
      tree: a pytree of arrays with a leading axis of at least ``size``.
      size: the number of real rows B.

    Returns:
      The tree with leading size ``size``.

    Examples:
      >>> padded, n = pad_batch(np.arange(5), 4)
      >>> unpad(padded, n).tolist()
      [0, 1, 2, 3, 4]

    Raises:
      ValueError: ``size`` negative or above a leaf's leading size (a negative size used to drop rows
        from the end, silently).
    """
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 0:
        raise ValueError(f"size must be an int >= 0 (the number of real rows); got {size!r}")
    shortest = min((x.shape[0] for x in jax.tree_util.tree_leaves(tree)), default=size)
    if size > shortest:
        raise ValueError(f"size = {size} is above the batch's leading size {shortest}: nothing to unpad")
    return jax.tree_util.tree_map(lambda x: x if x.shape[0] == size else x[:size], tree)


# ------------------------------------------------------------------------------------------ placing


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def place(x, sharding: NamedSharding):
    """Places one array with ``sharding``; multi-host safe for inputs equal on every process.

    A PRNG key is placed through its key data; an array already with ``sharding`` is returned as is.

    Args:
      x: an array (numpy, JAX, or a typed key).
      sharding: where to put it.

    Returns:
      A `jax.Array` with ``sharding``.

    Examples:
      >>> x = place(np.arange(4.0), replicated(batch_mesh()))
      >>> x.sharding.spec == P(), x.tolist()
      (True, [0.0, 1.0, 2.0, 3.0])
    """
    if _is_key(x):
        impl = jax.random.key_impl(x)
        return jax.random.wrap_key_data(place(jax.random.key_data(x), sharding), impl=impl)
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:  # already global: reshard on device
        return jax.jit(lambda a: a, out_shardings=sharding)(x)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree, mesh: Mesh):
    """Every leaf on every device of ``mesh`` (parameters, keys).

    Args:
      tree: a pytree of arrays (parameters, keys).
      mesh: the mesh.

    Returns:
      The tree with every leaf replicated over ``mesh``.

    Examples:
      >>> params = replicate({"w": np.ones((2, 2)), "key": jax.random.key(0)}, batch_mesh())
      >>> params["w"].sharding.spec == P(), params["key"].shape
      (True, ())
    """
    sharding = replicated(mesh)
    return jax.tree_util.tree_map(lambda x: place(x, sharding), tree)


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

    Examples:
      >>> mesh = batch_mesh()
      >>> x, n = shard_batch({"evidence": np.zeros((5, 3), np.int32)}, mesh)
      >>> n, x["evidence"].shape[0] % mesh.size, x["evidence"].sharding.spec == P("batch")
      (5, 0, True)
    """
    padded, n = pad_batch(tree, mesh.size, fill=fill)
    sharding = batch_sharding(mesh)
    return jax.tree_util.tree_map(lambda x: place(x, sharding), padded), n


def shard_local_batch(tree, mesh: Mesh):
    """Global arrays from each process's own rows (`jax.make_array_from_process_local_data`).

    For input pipelines where every process loads a different part of the data: the global batch is the
    concatenation of the processes' batches in process order. Each process's leading size must be a
    multiple of its number of devices in ``mesh`` (no padding: rows from different processes would
    interleave with it).

    Args:
      tree: a pytree of this process's rows, leading size a multiple of its devices in ``mesh``.
      mesh: a one-dimensional mesh.

    Returns:
      The tree of global arrays, sharded ``P("batch")``.

    Raises:
      ValueError: a leading size that is not a multiple of this process's devices.

    Examples:
      >>> mesh = batch_mesh()
      >>> local = np.arange(2 * jax.local_device_count(), dtype=np.float32)   # this process's rows
      >>> x = shard_local_batch(local, mesh)
      >>> x.shape[0] == 2 * jax.device_count()
      True
    """
    sharding = batch_sharding(mesh)
    local = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])
    n = leading_size(tree, "tree")
    if local == 0 or n % local:
        raise ValueError(f"tree's leading size {n} must be a multiple of this process's {local} devices in mesh")
    return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def to_host(tree):
    """NumPy copies of every leaf; on several processes, gathered from all of them first.

    Args:
      tree: a pytree of arrays (sharded or not).

    Returns:
      The tree with every leaf a `numpy.ndarray` holding the whole (global) array.

    Examples:
      >>> x, n = shard_batch(jnp.arange(3), batch_mesh())
      >>> type(to_host(x)).__name__, unpad(to_host(x), n).tolist()
      ('ndarray', [0, 1, 2])
    """

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(get, tree)




def default_mesh(mesh: Mesh | None) -> Mesh:
    """``mesh``, or a batch mesh over every device when it is None.

    Args:
      mesh: a mesh or None.

    Returns:
      A `jax.sharding.Mesh`.

    Examples:
      >>> default_mesh(None).axis_names
      ('batch',)
    """
    return batch_mesh() if mesh is None else mesh
