"""Evidence as data: a network's observed values (and soft likelihoods) turned into the vectors that are
multiplied into its CPTs.

Variable i's evidence vector ``e_i: f[card_i]`` is the one-hot of its observed state, all ones when it is
unobserved (-1), times its soft-evidence likelihood if one is given. Every query of ``gm.bn`` folds
``cpt_i * e_i`` into the network's tensor network, so one compiled plan serves every evidence pattern.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.network import BayesNet
from gm.validation import is_concrete, require

__all__ = [
    "Soft",
    "check_evidence",
    "check_evidence_shape",
    "check_evidence_values",
    "evidence_matrix",
    "evidence_matrix_host",
    "evidence_vectors",
    "safe_log",
    "soft_rows",
]

#: Soft (virtual) evidence: ``{name: f32[card]}`` likelihood vectors, or None.
Soft = Mapping[str, Any] | None


def safe_log(x):
    """``log(x)`` with ``log(0) = -inf`` and a finite gradient (no NaN from ``0 * log 0`` in autodiff).

    safe_log(x) = log(x) where x > 0, else -inf; the gradient at x = 0 is 0, not NaN.

    Args:
        x: a float array of any shape ``f[...]`` (non-negative).

    Returns:
        ``f[...]``, the same shape and dtype.

    Examples:
        >>> safe_log(jnp.array([1.0, 0.0])).tolist()
        [0.0, -inf]
        >>> jax.grad(lambda x: jnp.sum(jnp.exp(safe_log(x))))(jnp.array([0.0, 2.0])).tolist()
        [0.0, 1.0]
    """
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), -jnp.inf)


def check_evidence_shape(net: BayesNet, evidence) -> None:
    """Shape ``(n_vars,)`` and an integer dtype, or an error naming both (``evidence``: any array).

    Args:
        net: the network.
        evidence: an array (numpy or JAX, concrete or traced) meant as ``int32[n_vars]``.

    Returns:
        None; the check raises instead.

    Raises:
        ValueError: a shape other than ``(n_vars,)`` (the message suggests `jax.vmap` for batches).
        TypeError: a non-integer dtype.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> check_evidence_shape(net, np.array([0, 1, 1]))
        Traceback (most recent call last):
        ...
        ValueError: evidence must have shape (2,) (one entry per variable, -1 = unobserved), got (3,); batch with jax.vmap
    """
    if evidence.shape != (net.n_vars,):
        raise ValueError(
            f"evidence must have shape ({net.n_vars},) (one entry per variable, -1 = unobserved), "
            f"got {evidence.shape}; batch with jax.vmap"
        )
    if not np.issubdtype(evidence.dtype, np.integer):
        raise TypeError(f"evidence must be an integer array, got dtype {evidence.dtype}")


def check_evidence_values(net: BayesNet, evidence) -> None:
    """Every entry a state index of its variable or -1 (unobserved), or an error naming the culprit.

    Eager calls raise ValueError naming the first variable at fault, its value and its states; under
    `gm.validation.checked` the same check is compiled. Unchecked under `jax.jit`, an out-of-range value
    (including any value below -1) is impossible evidence: ``log P(e) = -inf`` and all-zero marginals.

    Args:
        net: the network.
        evidence: ``int32[n_vars]``, already of the right shape (`check_evidence_shape`), or a batch
            ``int32[..., n_vars]`` (the message then names the evidence set too).

    Returns:
        None; the check raises instead.

    Raises:
        ValueError: naming the first variable whose entry is outside ``[-1, card)``.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> check_evidence_values(net, np.array([0, 2]))
        Traceback (most recent call last):
        ...
        ValueError: evidence 2 for variable 'Wet' is out of range: it has 2 states ['no', 'yes']; use a state index or -1 (unobserved)
    """
    cards = np.asarray(net.cards)
    values = np.asarray(evidence) if is_concrete(evidence) else evidence

    def describe(at):
        if at is None:
            return "evidence out of range: each entry must be a state index of its variable or -1 (unobserved)"
        i = at[-1]
        batch = f"evidence set {', '.join(map(str, at[:-1]))}: " if len(at) > 1 else ""
        return (f"{batch}evidence {int(values[at])} for variable {net.names[i]!r} is out of range: it has "
                f"{net.cards[i]} states {list(net.states[i])}; use a state index or -1 (unobserved)")

    require((values >= -1) & (values < cards), describe)


def check_evidence(net: BayesNet, evidence) -> jax.Array:
    """``evidence`` as ``int32[n_vars]`` after `check_evidence_shape` and `check_evidence_values`.

    Args:
        net: the network.
        evidence: ``int[n_vars]``, each entry a state index or -1 (any array-like; traced arrays pass
            the shape check and skip the value check).

    Returns:
        A JAX ``int32[n_vars]`` array.

    Raises:
        ValueError: wrong shape, or (eager) an entry outside ``[-1, card)``.
        TypeError: a non-integer dtype.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> check_evidence(net, [-1, 1]).tolist()
        [-1, 1]
    """
    if is_concrete(evidence):
        evidence = np.asarray(evidence)
        check_evidence_shape(net, evidence)
        check_evidence_values(net, evidence)
        return jnp.asarray(evidence, jnp.int32)
    evidence = jnp.asarray(evidence)
    check_evidence_shape(net, evidence)
    check_evidence_values(net, evidence)
    return evidence.astype(jnp.int32)


def soft_rows(net: BayesNet, likelihoods: Soft, as_array):
    """``[(variable index, likelihood vector)]`` of soft evidence, each vector converted and checked.

    Each vector must have the variable's cardinality and finite, non-negative entries (the error names the
    variable and the state). Unchecked under `jax.jit`, a NaN likelihood gives NaN answers.

    Args:
        net: the network.
        likelihoods: ``{name: f[card]}`` soft-evidence likelihood vectors, or None.
        as_array: the conversion of each vector (``jnp.asarray`` or ``np.asarray`` with a dtype).

    Returns:
        A list of ``(int, f[card_i])`` pairs, in the mapping's order (empty for None).

    Raises:
        ValueError: an unknown name, a vector of the wrong length, a negative or non-finite entry.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> [(i, v.tolist()) for i, v in soft_rows(net, {"Wet": [0.3, 0.6]}, np.asarray)]
        [(1, [0.3, 0.6])]
    """
    rows = []
    for name, vec in (likelihoods or {}).items():
        i = net.index(name)
        vec = as_array(vec)
        if vec.shape != (net.cards[i],):
            raise ValueError(f"soft evidence for {name!r} must have shape ({net.cards[i]},), got {vec.shape}")

        def describe(at, name=name, i=i, vec=vec):
            if at is None:
                return f"soft evidence for {name!r} must be finite and non-negative"
            return (f"soft evidence for {name!r} must be finite and non-negative: state "
                    f"{net.states[i][at[0]]!r} has {float(vec[at[0]])}")

        require((vec >= 0) & (vec < np.inf), describe)
        rows.append((i, vec))
    return rows


def evidence_matrix(net: BayesNet, evidence, *, soft: Soft = None) -> jax.Array:
    """Evidence vectors of all variables as one zero-padded matrix ``f[n_vars, max_card]``.

    Row i is the one-hot of variable i's observed state (all ones over its states when unobserved),
    times its soft-evidence likelihood if one is given; entries past its cardinality are 0:
    ``E[i, x] = [x < card_i] * ([e_i = -1] + [e_i = x]) * soft_i(x)``. Built with a handful of array ops
    whatever the network's size (a per-variable loop costs XLA a kernel each).

    Args:
        net: the network.
        evidence: ``int32[n_vars]``, the observed state of each variable or -1.
        soft: optional ``{name: f[card]}`` likelihood vectors (virtual evidence).

    Returns:
        ``f[n_vars, max_card]`` in the CPTs' dtype.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> print(evidence_matrix(net, net.evidence({"Rain": "yes"}), soft={"Wet": [0.3, 0.6]}))
        [[0.  1. ]
         [0.3 0.6]]
    """
    evidence = check_evidence(net, evidence)
    dtype = jnp.result_type(*net.cpts) if net.cpts else jnp.float32
    cards = np.asarray(net.cards)
    width = int(cards.max()) if cards.size else 1
    states = np.arange(width)[None, :]
    valid = jnp.asarray(states < cards[:, None], dtype)
    one_hot = (evidence[:, None] == states).astype(dtype)
    mat = jnp.where(evidence[:, None] == -1, valid, one_hot)  # any other negative value: a zero row
    if soft:
        lik = jnp.ones((net.n_vars, width), dtype)
        for i, vec in soft_rows(net, soft, lambda v: jnp.asarray(v, dtype=dtype)):
            lik = lik.at[i, : net.cards[i]].set(vec)
        mat = mat * lik
    return mat


def evidence_vectors(net: BayesNet, evidence, *, soft: Soft = None) -> list[jax.Array]:
    """Per-variable evidence vectors ``e_i: f[card_i]`` (one-hot, or ones if unobserved, times soft).

    Args:
        net: the network.
        evidence: ``int32[n_vars]``, the observed state of each variable or -1.
        soft: optional ``{name: f[card]}`` likelihood vectors.

    Returns:
        A list of ``n_vars`` arrays, ``f[card_i]`` each: the rows of `evidence_matrix` without padding.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> [v.tolist() for v in evidence_vectors(net, jnp.array([-1, 0]))]
        [[1.0, 1.0], [1.0, 0.0]]
    """
    mat = evidence_matrix(net, evidence, soft=soft)
    return [mat[i, :card] for i, card in enumerate(net.cards)]


def evidence_matrix_host(net: BayesNet, evidence, *, soft: Soft = None) -> np.ndarray:
    """`evidence_matrix` in numpy float64 (``f64[n_vars, max_card]``), for the host engine: no device work.

    Args:
        net: the network.
        evidence: ``int[n_vars]`` (concrete), the observed state of each variable or -1.
        soft: optional ``{name: f[card]}`` likelihood vectors.

    Returns:
        A numpy ``float64[n_vars, max_card]`` array.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> evidence_matrix_host(net, np.array([-1, 0]))
        array([[1., 1.],
               [1., 0.]])
    """
    evidence = np.asarray(evidence)
    check_evidence_shape(net, evidence)
    check_evidence_values(net, evidence)
    cards = np.asarray(net.cards)
    width = max(net.cards) if net.cards else 1
    states = np.arange(width)[None, :]
    mat = np.where(evidence[:, None] == -1, states < cards[:, None], evidence[:, None] == states).astype(np.float64)
    for i, vec in soft_rows(net, soft, lambda v: np.asarray(v, np.float64)):
        mat[i, : net.cards[i]] *= vec
    return mat
