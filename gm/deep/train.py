"""Training utilities shared by the deep models: train state, step results, optimisers, checkpoints, early
stopping.

* :class:`TrainState` is a pytree: ``step``, ``params`` and ``opt_state`` are leaves; the optax
  transformation is a static field. The model's config is not in the state: every family's functions take
  it as an argument (first, or right after the key), and the configs are registered as static pytrees
  (:func:`static_config`), so a jitted step traced once is reused for every later call with an equal config.
* :class:`TrainStep` ``(state, metrics)`` is what every training step returns, :class:`LossAndMetrics`
  ``(loss, metrics)`` what every loss with auxiliary metrics returns (``jax.value_and_grad(...,
  has_aux=True)`` takes it as the pair it is).
* :func:`save_checkpoint` / :func:`restore_checkpoint` write and read any pytree plus a JSON dictionary
  with orbax; restoring needs a template of the same structure (e.g. a freshly created state).
* :class:`EarlyStopping` is plain Python state that round-trips through JSON (so it can be checkpointed).
* Value guards every family's training shares (issue 18): :func:`valid_images`, :func:`check_images`,
  :func:`check_labels` (the batch checks of a training loop), :func:`apply_if_finite` and
  :func:`mark_skipped` (a jitted step skips and flags an update whose batch, loss or gradients are bad).

Length: about 580 lines. The one module that every deep family's training imports (state, optimiser,
guards, checkpoints, early stopping); each part is small, and splitting them would give every family
four imports for one concern.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zlib
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gm.validation import is_concrete, require

__all__ = [
    "static_config",
    "check_choices",
    "check_learning_rates",
    "all_finite",
    "keep_if_finite",
    "valid_images",
    "check_images",
    "check_labels",
    "GuardedUpdate",
    "apply_if_finite",
    "mark_skipped",
    "TrainState",
    "TrainStep",
    "LossAndMetrics",
    "make_optimizer",
    "save_checkpoint",
    "Checkpoint",
    "restore_checkpoint",
    "latest_checkpoint_step",
    "EarlyStopping",
]


def static_config(cls):
    """Class decorator: a frozen dataclass of settings that is passed to jitted functions as an argument.

    The class becomes a pytree with no leaves whose tree structure holds the instance itself
    (``jax.tree_util.register_static``): ``jax.jit``, ``jax.vmap`` and sharded steps accept it in any
    position, equal configs share one compilation and a different config traces anew. Instances must be
    hashable (frozen dataclasses of numbers, strings and tuples are).

    Examples:
        >>> @static_config
        ... @dataclasses.dataclass(frozen=True)
        ... class Config:
        ...     width: int = 8
        >>> jax.tree.leaves(Config())
        []
    """
    return jax.tree_util.register_static(cls)


def check_choices(config, choices: dict[str, tuple]) -> None:
    """Raise ``ValueError`` naming the config, the field, the allowed values and the value given, for the first
    field of ``config`` whose value is not among its ``choices[field]``.

    Examples:
        >>> check_choices(config, {"model": ("vae", "ae", "cvae"), "encoder": ("mlp", "conv")})
    """
    for name, allowed in choices.items():
        value = getattr(config, name)
        if value not in allowed:
            raise ValueError(f"{type(config).__name__}.{name} must be one of {allowed}, got {value!r}")


def check_learning_rates(config, *names: str) -> None:
    """Raise ``ValueError`` naming the config and the field when a learning rate ``getattr(config, name)`` is
    not a finite positive number (NaN, inf, 0 or negative trains to NaN or not at all): checked when the
    config is made, before any step.

    Examples:
        >>> check_learning_rates(config, "learning_rate")   # ValueError: VAEConfig.learning_rate must be ...
    """
    for name in names:
        value = getattr(config, name)
        if callable(value):
            continue
        if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{type(config).__name__}.{name} must be a finite positive number, got {value!r}")


def all_finite(*trees) -> jax.Array:
    """bool[]: every floating leaf of ``trees`` is finite (no NaN, no inf).

    Examples:
        >>> bool(all_finite({"w": jnp.ones(2)}, jnp.array(jnp.nan)))
        False
    """
    ok = jnp.asarray(True)
    for leaf in jax.tree.leaves(trees):
        leaf = jnp.asarray(leaf)
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(leaf))
    return ok


def keep_if_finite(ok, new_state, old_state):
    """``new_state`` where ``ok`` (a traced bool), else ``old_state``: a training step whose batch, loss or
    gradients are not finite is skipped instead of poisoning the parameters and the optimiser state.

    Examples:
        >>> state = keep_if_finite(all_finite(loss, grads), state.apply_gradients(grads), state)
    """
    return jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, old_state)


def valid_images(images, *, unit_interval: bool = True):
    """bool array shaped like ``images``: the pixel is finite (and, with ``unit_interval``, in [0, 1]).

    A numpy array for concrete input, a traced array inside ``jit`` (the steps fold it into their
    ``finite`` flag).

    Examples:
        >>> valid_images(np.array([0.5, 2.0, np.nan])).tolist()
        [True, False, False]
    """
    x = np.asarray(images) if is_concrete(images) else jnp.asarray(images)
    ok = np.isfinite(x) if isinstance(x, np.ndarray) else jnp.isfinite(x)
    if unit_interval:
        ok = ok & (x >= 0) & (x <= 1)
    return ok


def check_images(images, name: str, *, unit_interval: bool = True, why: str = "") -> None:
    """The value check of a batch of images (a training loop's, once per epoch or run): every pixel
    finite, and with ``unit_interval`` in [0, 1]; ``ValueError`` naming ``name``, the pixel's position,
    its value and the image (eager), or a `gm.validation.checked` check (compiled).

    Args:
        images: ``f32[B, H, W, C]`` (any shape; the first axis is the image).
        name: the argument in the message, e.g. ``"batch['image']"``.
        unit_interval: pixels must lie in [0, 1].
        why: appended to the rule in the message, e.g. ``" (Bernoulli likelihood)"``.

    Returns:
        None.

    Raises:
        ValueError: (eager) a NaN or infinite pixel, or one outside [0, 1].

    Examples:
        >>> check_images(np.array([[0.5, 255.0]]), "batch['image']")
        Traceback (most recent call last):
        ...
        ValueError: batch['image'][0, 1] = 255.0: every pixel must be finite and in [0, 1] (image 0)
    """
    x = np.asarray(images) if is_concrete(images) else jnp.asarray(images)
    want = ("finite and in [0, 1]" if unit_interval else "finite") + why

    def describe(at):
        if at is None:
            return f"{name} has an invalid pixel: every pixel must be {want}"
        return f"{name}[{', '.join(map(str, at))}] = {float(x[at])}: every pixel must be {want} (image {at[0]})"

    require(valid_images(x, unit_interval=unit_interval), describe)


def check_labels(labels, num_classes: int, name: str) -> None:
    """Every label an integer class index in ``[0, num_classes)``: ``ValueError`` naming ``name``, the
    example and the value (eager), or a `gm.validation.checked` check (compiled). Inside an unchecked
    ``jit`` an out-of-range label would one-hot to zeros (silently no class), so steps flag it instead.

    Examples:
        >>> check_labels(np.array([3, 10]), 10, "batch['label']")
        Traceback (most recent call last):
        ...
        ValueError: batch['label'][1] = 10 is not a class index in [0, 10)
    """
    y = np.asarray(labels) if is_concrete(labels) else jnp.asarray(labels)
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer array of class indices; got dtype {y.dtype}")

    def describe(at):
        if at is None:
            return f"{name} has a label outside [0, {num_classes})"
        return f"{name}[{', '.join(map(str, at))}] = {int(y[at])} is not a class index in [0, {num_classes})"

    require((y >= 0) & (y < num_classes), describe)


class GuardedUpdate(NamedTuple):
    """What :func:`apply_if_finite` returns.

    Attributes:
        state: the updated state, or the state passed in when the update was skipped.
        ok: ``bool[]``, whether the update was applied.
    """

    state: Any
    ok: jax.Array


def apply_if_finite(state: "TrainState", grads, *values, valid=True) -> GuardedUpdate:
    """One guarded optimiser update: ``state.apply_gradients(grads)`` when ``valid`` (a traced bool, e.g.
    the batch's `valid_images`) holds and ``grads`` and ``values`` (the loss) are finite, else ``state``
    unchanged (a skipped step; :func:`keep_if_finite`).

    Returns:
        :class:`GuardedUpdate` ``(state, ok)``; ``ok`` is the bool[] the training loop reads through
        :func:`mark_skipped`.

    Examples:
        >>> state, ok = apply_if_finite(state, grads, loss, valid=jnp.all(valid_images(batch["image"])))
    """
    ok = jnp.all(jnp.asarray(valid)) & all_finite(grads, *values)
    return GuardedUpdate(keep_if_finite(ok, state.apply_gradients(grads), state), ok)


def mark_skipped(metrics: dict, ok, *names: str) -> dict:
    """The marker of a skipped step in a step's metrics: ``finite`` (1.0, or 0.0 when ``ok`` is False)
    and the losses ``names`` set to NaN where ``ok`` is False, so that the training loop, which checks
    every logging window for non-finite values, stops there (``experiments._common.train_loop``).

    Examples:
        >>> metrics = mark_skipped({"loss": loss}, ok, "loss")
    """
    ok = jnp.asarray(ok)
    out = dict(metrics)
    for name in names:
        out[name] = jnp.where(ok, out[name], jnp.nan)
    out["finite"] = ok.astype(jnp.float32)
    return out


@flax.struct.dataclass
class TrainState:
    """Parameters, optimiser state and step counter of one model.

    Attributes:
        step: ``int32[]`` number of updates applied.
        params: the model's parameter pytree.
        opt_state: the optax state of ``tx``.
        tx: the optax transformation (static).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation) -> "TrainState":
        """A fresh state at step 0: ``tx.init(params)`` as the optimiser state.

        Examples:
            >>> state = TrainState.create({"w": jnp.zeros(3)}, make_optimizer(1e-3))
            >>> int(state.step)
            0
        """
        return cls(jnp.zeros((), jnp.int32), params, tx.init(params), tx)

    def apply_gradients(self, grads) -> "TrainState":
        """One optimiser update: ``params <- params + tx.update(grads)``; ``step <- step + 1``."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1, params=optax.apply_updates(self.params, updates), opt_state=opt_state
        )


def make_optimizer(
    learning_rate: float,
    *,
    schedule: str = "constant",
    total_steps: int = 0,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
) -> optax.GradientTransformation:
    """AdamW (Adam when ``weight_decay = 0``) with an optional schedule and gradient clipping.

    Equal arguments return the same (cached) transformation object. It is a static field of
    :class:`TrainState`, so two states created from equal configs share every jitted step's compilation
    (a fresh ``optax`` object per state would compare unequal and force a retrace and recompile).

    Args:
        learning_rate: peak learning rate, or a schedule ``step -> rate`` (cached by identity: build it once
            per setting, as `gm.deep.translate.learning_rate_schedule` does; only with ``schedule="constant"``
            and no warm-up).
        schedule: ``"constant"`` or ``"cosine"`` (linear warm-up for ``warmup_steps``, then cosine decay to
            1% of the peak at ``total_steps``).
        total_steps: length of the cosine schedule (required for ``"cosine"``).
        warmup_steps: linear warm-up steps.
        weight_decay: decoupled weight decay of AdamW.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
    """
    if callable(learning_rate):
        if schedule != "constant" or warmup_steps:
            raise ValueError("a learning_rate schedule (callable) takes schedule='constant' and warmup_steps=0")
    else:
        learning_rate = float(learning_rate)
        if not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite positive number, got {learning_rate!r}")
    args = (learning_rate, schedule, int(total_steps), int(warmup_steps), float(weight_decay),
            None if grad_clip is None else float(grad_clip), float(b1), float(b2))
    return _build_optimizer(*args)


@functools.lru_cache(maxsize=256)
def _build_optimizer(learning_rate, schedule, total_steps, warmup_steps, weight_decay, grad_clip, b1, b2):
    if schedule == "constant":
        lr = learning_rate
        if warmup_steps:
            lr = optax.join_schedules(
                [optax.linear_schedule(0.0, learning_rate, warmup_steps), optax.constant_schedule(learning_rate)],
                [warmup_steps],
            )
    elif schedule == "cosine":
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps}) for cosine")
        lr = optax.warmup_cosine_decay_schedule(
            0.0 if warmup_steps else learning_rate,
            learning_rate,
            warmup_steps,
            total_steps,
            end_value=0.01 * learning_rate,
        )
    else:
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    parts = []
    if grad_clip is not None:
        parts.append(optax.clip_by_global_norm(grad_clip))
    parts.append(optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay))
    return optax.chain(*parts)


class TrainStep(NamedTuple):
    """What a training step returns.

    Attributes:
        state: the updated train state (a :class:`TrainState`, or a family's pair of them).
        metrics: ``{name: f32[]}`` batch means of the step's losses and diagnostics.
    """

    state: Any
    metrics: dict


class LossAndMetrics(NamedTuple):
    """A differentiable loss and the terms that make it up (the pair ``jax.value_and_grad(has_aux=True)``
    expects).

    Attributes:
        loss: ``f32[]`` the scalar that is minimised.
        metrics: ``{name: f32[]}`` its terms and diagnostics.
    """

    loss: jax.Array
    metrics: dict


# ----------------------------------------------------------------------------------------- checkpoints


def _manager(directory: str, max_to_keep: int | None = None):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


_LEAVES = "_saved_leaves"  # the shapes and dtypes as written, in the metadata (orbax casts on restore)


def _checksum(value: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(value).tobytes())


def _as_dict(tree) -> dict[str, Any]:
    return {f"{i:05d}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(tree))}


def save_checkpoint(directory: str, step: int, tree, metadata: dict | None = None, *, max_to_keep: int = 2):
    """Save the leaves of ``tree`` and a JSON-serialisable ``metadata`` dict as checkpoint ``step``.

    The tree is stored by its flattened leaves, so any pytree (train states with optax namedtuples,
    tuples of states) round-trips; :func:`restore_checkpoint` rebuilds it from a template. Blocks until
    the checkpoint is on disk; keeps the newest ``max_to_keep`` checkpoints.
    """
    import orbax.checkpoint as ocp

    manager = _manager(directory, max_to_keep)
    leaves = _as_dict(tree)
    metadata = dict(metadata or {})
    # shape, dtype and a CRC-32 of each leaf's bytes, checked on restore: orbax casts silently and reads a
    # flipped bit in a stored chunk back as a plausible number
    metadata[_LEAVES] = {k: [list(v.shape), str(v.dtype), _checksum(v)] for k, v in leaves.items()}
    manager.save(
        int(step),
        args=ocp.args.Composite(
            tree=ocp.args.StandardSave(leaves), metadata=ocp.args.JsonSave(metadata)
        ),
        force=True,
    )
    manager.wait_until_finished()
    manager.close()


def latest_checkpoint_step(directory: str) -> int | None:
    """The newest checkpoint step in ``directory`` (``None`` when there is none)."""
    if not os.path.isdir(directory):
        return None
    manager = _manager(directory)
    step = manager.latest_step()
    manager.close()
    return step


class Checkpoint(NamedTuple):
    """A restored checkpoint.

    Attributes:
        tree: the saved pytree, rebuilt on the template's structure.
        metadata: the JSON dictionary saved with it.
    """

    tree: Any
    metadata: dict


def _leaf_names(template) -> list[str]:
    return [jax.tree_util.keystr(path) or "(root)" for path, _ in jax.tree_util.tree_flatten_with_path(template)[0]]


def restore_checkpoint(directory: str, template, step: int | None = None) -> Checkpoint:
    """Restore a :class:`Checkpoint` ``(tree, metadata)`` from checkpoint ``step`` (default: the newest).

    Every restored leaf is verified: its shape and dtype must be the template's, its bytes must match the
    CRC-32 :func:`save_checkpoint` wrote with them (a flipped bit in a stored chunk is caught here, even
    one that decodes to a plausible number), and its values finite (caught here, not in the first
    training step).
    Any failure to read the step (a corrupt or partial step folder, broken JSON metadata) is a
    ``ValueError`` that names the folder and the step and says what to do.

    Args:
        directory: the checkpoint directory given to :func:`save_checkpoint`.
        template: a pytree with the structure, shapes and dtypes of the saved one.
        step: which checkpoint; ``None`` for the newest.

    Raises:
        FileNotFoundError: no checkpoint in ``directory``.
        ValueError: the step cannot be read, or a leaf (named by its path in the template) has another
            shape or dtype than the template's, bytes that do not match their checksum (naming the step's
            ``tree`` folder) or a non-finite value.

    Examples:
        >>> state, meta = restore_checkpoint("runs/vae_mnist/checkpoints/vae", fresh_state)
    """
    import orbax.checkpoint as ocp

    where = os.path.abspath(directory)
    advice = ("the checkpoint is corrupt or incomplete: delete that step's folder to resume from an earlier "
              "step, or start the run afresh without --resume (or with a new --out)")
    try:
        manager = _manager(directory)
        step = manager.latest_step() if step is None else step
    except Exception as error:  # orbax raises many types for a damaged folder
        raise ValueError(f"cannot read the checkpoints in {where!r} ({type(error).__name__}: {error}); "
                         f"{advice}") from error
    if step is None:
        manager.close()
        raise FileNotFoundError(f"no checkpoint in {directory!r}")
    leaves, treedef = jax.tree.flatten(template)
    names = _leaf_names(template)
    abstract = {
        f"{i:05d}": jax.ShapeDtypeStruct(np.shape(leaf), np.asarray(leaf).dtype) for i, leaf in enumerate(leaves)
    }
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(tree=ocp.args.StandardRestore(abstract), metadata=ocp.args.JsonRestore()),
        )
    except Exception as error:
        raise ValueError(f"cannot restore checkpoint step {step} from {os.path.join(where, str(step))!r} ({type(error).__name__}: "
                         f"{error}); {advice}") from error
    finally:
        manager.close()
    saved = restored["tree"]
    if len(saved) != len(leaves):
        raise ValueError(f"checkpoint step {step} in {where!r} has {len(saved)} leaves, the template has "
                         f"{len(leaves)}: it was written by another model or config")
    metadata = restored["metadata"]
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"checkpoint step {step} in {where!r}: its metadata is not a JSON object; {advice}")
    metadata = dict(metadata or {})
    written = metadata.pop(_LEAVES, None)  # absent in checkpoints older than this check
    new_leaves = []
    for i, leaf in enumerate(leaves):
        value = np.asarray(saved[f"{i:05d}"])
        want = np.asarray(leaf)
        shape, dtype = (value.shape, value.dtype) if written is None else (
            tuple(written[f"{i:05d}"][0]), np.dtype(written[f"{i:05d}"][1]))
        if shape != want.shape or dtype != want.dtype:
            raise ValueError(f"checkpoint step {step} in {where!r}: leaf {names[i]} has shape {shape} and "
                             f"dtype {dtype}, the template {want.shape} and {want.dtype}")
        if written is not None and len(written[f"{i:05d}"]) > 2 and _checksum(value) != written[f"{i:05d}"][2]:
            raise ValueError(f"checkpoint step {step} in {where!r}: leaf {names[i]} does not match the checksum "
                             f"written with it: a file under {os.path.join(where, str(step), 'tree')!r} is "
                             f"corrupt; {advice}")
        if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value)):
            bad = tuple(int(j) for j in np.argwhere(~np.isfinite(value))[0]) if value.ndim else ()
            raise ValueError(f"checkpoint step {step} in {where!r}: leaf {names[i]} has a non-finite value "
                             f"{value[bad]} at {list(bad)}; {advice}")
        new_leaves.append(jnp.asarray(value))
    return Checkpoint(jax.tree.unflatten(treedef, new_leaves), metadata)


# ------------------------------------------------------------------------------------- early stopping


@dataclasses.dataclass
class EarlyStopping:
    """Stop when a monitored loss has not improved by ``min_delta`` for ``patience`` evaluations.

    ``update(value)`` returns ``True`` when ``value`` is a new best (the caller keeps its parameters).
    ``should_stop`` turns ``True`` after ``patience`` evaluations without improvement.
    """

    patience: int = 10
    min_delta: float = 0.0
    best: float = float("inf")
    best_epoch: int = -1
    bad_evaluations: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record the monitored ``value`` of evaluation ``epoch``; ``True`` when it is a new best.

        A non-finite value stops the run at once (``should_stop`` turns ``True``).
        """
        if not np.isfinite(value):
            self.bad_evaluations = self.patience  # a NaN loss stops the run
            return False
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_evaluations = float(value), int(epoch), 0
            return True
        self.bad_evaluations += 1
        return False

    @property
    def should_stop(self) -> bool:
        """``patience`` evaluations in a row without improvement (or a non-finite value)."""
        return self.bad_evaluations >= self.patience

    def to_dict(self) -> dict:
        """The JSON-serialisable state (for a checkpoint's metadata)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EarlyStopping":
        """The inverse of :meth:`to_dict`."""
        return cls(**d)
