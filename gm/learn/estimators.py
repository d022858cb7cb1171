"""Parameter estimation from complete data: family counts, maximum likelihood, Dirichlet estimates.

Records are rows of ``data: int32[N, n_vars]`` (state indices in the network's variable order). The
sufficient statistics of a discrete Bayesian network are its *family counts*: for each variable i the
(weighted) number of records with (parents(i), X_i) = (u, x), in the CPT's layout (parent axes in the
order of ``structure.parents[i]``, the child's axis last). They are computed with one scatter-add per
variable (a Python loop over variables is static structure; there is no loop over records), so the
estimators jit, and `jax.vmap` over record weights gives bootstrap replicates in one call:

    >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
    ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
    >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
    >>> N, B = data.shape[0], 100
    >>> boot = jax.random.multinomial(jax.random.key(0), N, jnp.full(N, 1 / N), shape=(B, N))   # f32[B, N]
    >>> nets = jax.vmap(lambda w: mle(net, data, weights=w))(boot)                 # CPTs f32[B, ...]
    >>> nets.cpt("Wet").shape
    (100, 2, 2)

Estimates (theta_iux = P(X_i = x | U_i = u), N_iux counts, alpha_iux pseudo-counts):

* maximum likelihood  theta = N_iux / sum_x N_iux;
* posterior mean      theta = (N_iux + alpha_iux) / sum_x (N_iux + alpha_iux);
* posterior mode      theta = (N_iux + alpha_iux - 1)_+ / sum_x (N_iux + alpha_iux - 1)_+ (MAP).

A parent configuration with no records (or, for MAP, an all-zero row) gets the **uniform** row, as
pgmpy's ``MaximumLikelihoodEstimator`` does; never NaN.

Priors are one type, `gm.learn.Prior` (`gm/learn/common.py`): ``Prior.bdeu(ess)`` puts alpha = ESS /
(card_i * prod(parent cards)) on every entry (likelihood-equivalent, Heckerman et al. 1995),
``Prior.k2()`` puts 1 everywhere (Cooper & Herskovits 1992), ``Prior.dirichlet(alpha)`` takes explicit
concentrations (a number, ``{name: number or array}`` in the CPT's shape, or a sequence in variable
order). These are pgmpy's ``BayesianEstimator`` prior types, with the same values; the prior's
``estimate`` says posterior mean or mode.

Records with a missing value (-1) in a family are left out of *that family's* counts (available-case
counting); use `gm.learn.em` to learn from incomplete records properly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.network import BayesNet, Structure
from gm.learn.common import Prior, normalize_counts
from gm.validation import is_concrete, require

__all__ = ["family_counts", "prior_counts", "mle", "dirichlet", "as_structure", "sample_dirichlet_rows"]


def as_structure(net_or_structure) -> Structure:
    """The `Structure` of a `BayesNet` (or the structure itself); TypeError naming the argument.

    Args:
      net_or_structure: a `gm.bn.BayesNet` or a `gm.bn.Structure`.

    Returns:
      The `Structure`.

    Raises:
      TypeError: anything else, naming its type.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> as_structure(net) is as_structure(net.structure) is net.structure
      True
    """
    if isinstance(net_or_structure, BayesNet):
        return net_or_structure.structure
    if isinstance(net_or_structure, Structure):
        return net_or_structure
    raise TypeError(
        f"net_or_structure must be a gm.bn.BayesNet or gm.bn.Structure, got {type(net_or_structure).__name__}"
    )


def check_records(structure: Structure, data, *, weights=None):
    """``(data int32[N, n_vars], weights f[N])`` after the checks every estimator shares.

    Shapes and dtypes always (ValueError / TypeError naming the argument). Values when concrete, or
    compiled under `gm.validation.checked`: every entry a state index of its column's variable or -1
    (missing), ValueError naming the record, the variable and the value; weights finite and
    non-negative, naming the record.
    """
    concrete = is_concrete(data, weights)
    data = np.asarray(data) if concrete else jnp.asarray(data)
    n = len(structure.names)
    if data.ndim != 2 or data.shape[1] != n:
        raise ValueError(f"data must have shape (N, {n}) (one column per variable, -1 = missing), got {data.shape}")
    if not jnp.issubdtype(data.dtype, jnp.integer):
        raise TypeError(f"data must be an integer array of state indices, got dtype {data.dtype}")
    if weights is None:
        w = jnp.ones((data.shape[0],), jnp.result_type(float))
    else:
        w = jnp.asarray(weights)
        if w.shape != (data.shape[0],):
            raise ValueError(f"weights must have shape ({data.shape[0]},) (one per record), got {w.shape}")
        w = w.astype(jnp.result_type(float))
        w_values = np.asarray(w) if concrete else w

        def bad_weight(at):
            if at is None:
                return "weights must be finite and non-negative"
            return f"weights must be finite and non-negative: record {at[0]} has weight {float(w_values[at[0]])}"

        require((w_values >= 0) & (w_values < np.inf), bad_weight)
    cards = np.asarray(structure.cards)

    def bad_value(at):
        if at is None:
            return "data out of range: every entry must be a state index of its variable or -1 (missing)"
        r, i = at
        return (f"data[{r}, {i}] = {int(data[r, i])} is not a state of {structure.names[i]!r} "
                f"({structure.cards[i]} states {list(structure.states[i])}); use a state index or -1 (missing)")

    require((data >= -1) & (data < cards), bad_value)
    return jnp.asarray(data, jnp.int32), w


def family_counts(net_or_structure, data, *, weights=None) -> tuple[jax.Array, ...]:
    """Weighted family counts N_i[u, x] of every variable, in CPT layout.

    Args:
      net_or_structure: a `gm.bn.BayesNet` or its `Structure`.
      data: ``int32[N, n_vars]`` state indices; -1 (missing) drops the record from the counts of every
        family that contains the variable.
      weights: optional ``f32[N]`` record weights (default 1), finite and non-negative.

    Returns:
      A tuple with ``f32[*parent cards, card]`` for each variable. Eager calls raise on a value out of
      range or a bad weight (`check_records`); unchecked under `jax.jit`, a family whose columns hold an
      out-of-range value, or any negative or non-finite weight, has an all-NaN table (never a plausible
      count), and so do the estimates built on it.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> rain, wet = family_counts(net, data)           # counts[i]: f32[*parent cards, card]
      >>> rain.tolist(), wet.tolist()                    # N_Rain[x], N_Wet[rain, x]
      ([3.0, 1.0], [[2.0, 1.0], [0.0, 1.0]])
      >>> family_counts(net, jnp.array([[1, -1]]))[0].tolist()   # a missing Wet still counts for Rain
      [0.0, 1.0]
    """
    structure = as_structure(net_or_structure)
    data, w = check_records(structure, data, weights=weights)
    weights_invalid = jnp.any(~((w >= 0) & (w < jnp.inf)))
    counts = []
    for i, family in enumerate(structure.families):
        cards = [structure.cards[v] for v in family]
        cols = data[:, list(family)]  # int32[N, len(family)]
        strides = np.cumprod([1] + cards[::-1][:-1])[::-1].astype(np.int32)
        complete = jnp.all(cols >= 0, axis=1)
        flat = jnp.maximum(cols, 0) @ jnp.asarray(strides)
        size = math.prod(cards)
        table = jnp.zeros((size,), w.dtype).at[flat].add(jnp.where(complete, w, 0.0))
        invalid = jnp.any((cols < -1) | (cols >= jnp.asarray(cards, cols.dtype))) | weights_invalid
        counts.append(jnp.where(invalid, jnp.nan, table).reshape(cards))
    return tuple(counts)


def prior_counts(net_or_structure, *, prior: Prior, dtype=None) -> tuple[jax.Array, ...]:
    """Dirichlet concentrations alpha_i[u, x] of every CPT under ``prior``, in CPT layout.

    ``Prior.bdeu(ess)``: alpha = ESS / (card * prod(parent cards)); ``Prior.k2()``: alpha = 1;
    ``Prior.dirichlet(alpha)``: a number for every entry, ``{name: number or array}`` (names left out get
    no prior: 1 for a posterior-mode estimate, 0 for a posterior mean), or a sequence in variable order;
    arrays broadcast to the CPT's shape.

    Args:
      net_or_structure: a `gm.bn.BayesNet` or `Structure`.
      prior: a `gm.learn.Prior`.
      dtype: the arrays' dtype (default: JAX's float).

    Returns:
      A tuple with ``f32[*parent cards, card]`` for each variable.

    Raises:
      ValueError: naming an unknown prior kind, an unknown variable, a negative or mis-shaped value.
      TypeError: ``prior`` is not a `gm.learn.Prior`.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> rain, wet = prior_counts(net, prior=Prior.bdeu(4.0))   # ESS / (card * prod(parent cards))
      >>> rain.tolist(), wet.tolist()
      ([2.0, 2.0], [[1.0, 1.0], [1.0, 1.0]])
    """
    structure = as_structure(net_or_structure)
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be a gm.learn.Prior (Prior.bdeu(5.0), Prior.k2(), Prior.dirichlet(a)), "
                        f"got {type(prior).__name__}")
    dtype = dtype or jnp.result_type(float)
    shapes = [tuple(structure.cards[v] for v in fam) for fam in structure.families]
    if prior.kind == "k2":
        values = [1.0] * len(shapes)
    elif prior.kind == "bdeu":
        ess = _per_variable(structure, prior.equivalent_sample_size, "equivalent_sample_size", 0.0)
        values = [float(e) / math.prod(s) for e, s in zip(ess, shapes)]
    elif prior.kind == "dirichlet":
        values = _per_variable(structure, prior.alpha, "alpha", 1.0 if prior.estimate == "map" else 0.0)
    else:
        raise ValueError(f'prior.kind must be "bdeu", "k2" or "dirichlet", got {prior.kind!r}')
    out = []
    for name, value, shape in zip(structure.names, values, shapes):
        arr = np.asarray(value, dtype=np.float64)
        try:
            arr = np.broadcast_to(arr, shape)
        except ValueError:
            raise ValueError(f"pseudo-counts of {name!r} have shape {arr.shape}, expected {shape}") from None
        if np.any(arr < 0) or not np.all(np.isfinite(arr)):
            raise ValueError(f"pseudo-counts of {name!r} must be finite and non-negative")
        out.append(jnp.asarray(arr, dtype))
    return tuple(out)


def _per_variable(structure: Structure, value, what: str, missing: float) -> list:
    n = len(structure.names)
    if isinstance(value, Mapping):
        for name in value:
            if name not in structure.index:
                raise ValueError(f"{what} given for unknown variable {name!r}")
        return [value.get(name, missing) for name in structure.names]
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what} as a sequence needs one entry per variable ({n}), got {len(value)}")
        return list(value)
    return [value] * n


def mle(net_or_structure, data, *, weights=None) -> BayesNet:
    """Maximum-likelihood CPTs from complete records.

    Args:
      net_or_structure: a `gm.bn.BayesNet` (its CPTs are ignored) or `Structure`.
      data: ``int32[N, n_vars]``, -1 missing (left out of the families that contain it).
      weights: optional ``f32[N]`` record weights.

    Returns:
      A `BayesNet` with theta_i[u, x] = N_i[u, x] / N_i[u]; unseen parent configurations are uniform.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> fitted = mle(net, data)
      >>> print(fitted.cpt("Rain"), fitted.cpt("Wet"))
      [0.75 0.25] [[0.6667 0.3333]
       [0.     1.    ]]
      >>> jax.jit(mle)(net, data).cpt("Rain").tolist()       # jits: the structure is static
      [0.75, 0.25]
    """
    structure = as_structure(net_or_structure)
    counts = family_counts(structure, data, weights=weights)
    return BayesNet(structure, [normalize_counts(c) for c in counts])  # alpha = 1, mode: N / sum N


def dirichlet(net_or_structure, data, *, prior: Prior = Prior.bdeu(5.0), weights=None) -> BayesNet:
    """Bayesian point estimate of the CPTs under independent Dirichlet priors on every CPT row.

    ``prior.estimate == "mean"``: theta = (N + alpha) / sum (pgmpy's BayesianEstimator); ``"map"``:
    theta = (N + alpha - 1)_+ / sum (an all-zero row is uniform).

    Args:
      net_or_structure: a `gm.bn.BayesNet` (CPTs ignored) or `Structure`.
      data: ``int32[N, n_vars]``, -1 missing (left out of the families that contain it).
      prior: a `gm.learn.Prior` (default BDeu with ESS 5, posterior mean).
      weights: optional ``f32[N]`` record weights.

    Returns:
      A `BayesNet`.

    Raises:
      ValueError: ``prior.estimate`` is neither ``"mean"`` nor ``"map"``, or a bad prior value.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> fitted = dirichlet(net, data, prior=Prior.k2())        # (N + 1) / (N_row + card)
      >>> print(fitted.cpt("Rain"), fitted.cpt("Wet"))
      [0.6667 0.3333] [[0.6    0.4   ]
       [0.3333 0.6667]]
    """
    structure = as_structure(net_or_structure)
    alpha = prior_counts(structure, prior=prior)
    if prior.estimate not in ("mean", "map"):
        raise ValueError(f'prior.estimate must be "mean" or "map", got {prior.estimate!r}')
    counts = family_counts(structure, data, weights=weights)
    return BayesNet(structure, [normalize_counts(c, alpha=a, estimate=prior.estimate) for c, a in zip(counts, alpha)])


def sample_dirichlet_rows(key, concentrations, sample_shape: tuple[int, ...] = ()) -> list[jax.Array]:
    """Independent Dirichlet draws of every row of every table.

    One gamma draw covers all tables (one kernel and one compilation, however many tables there are);
    normalised independent gammas are Dirichlet rows: g_k ~ Gamma(alpha_k, 1), theta = g / sum_k g_k.

    Args:
      key: a `jax.random` key.
      concentrations: a sequence of tables, ``concentrations[i]: f32[..., K_i]`` (positive).
      sample_shape: leading shape of the draws.

    Returns:
      A list of arrays, ``f32[*sample_shape, *concentrations[i].shape]``, whose last axes sum to one.

    Examples:
      >>> rows = sample_dirichlet_rows(jax.random.key(0), [jnp.ones(3), jnp.ones((2, 4))], sample_shape=(5,))
      >>> [r.shape for r in rows]
      [(5, 3), (5, 2, 4)]
      >>> bool(jnp.allclose(rows[1].sum(-1), 1.0))
      True
    """
    concentrations = [jnp.asarray(c) for c in concentrations]
    dtype = jnp.result_type(*concentrations) if concentrations else jnp.result_type(float)
    flat = jnp.concatenate([c.reshape(-1) for c in concentrations]).astype(dtype)
    draws = jax.random.gamma(key, jnp.broadcast_to(flat, sample_shape + flat.shape), dtype=dtype)
    draws = jnp.maximum(draws, jnp.finfo(dtype).tiny)
    out, start = [], 0
    for c in concentrations:
        rows = draws[..., start:start + c.size].reshape(sample_shape + c.shape)
        out.append(rows / jnp.sum(rows, axis=-1, keepdims=True))
        start += c.size
    return out
