"""The linear-Gaussian Bayesian network: static structure (names, parents) plus parameter leaves.

Each variable is a linear function of its parents plus independent Gaussian noise,

    X_i = b_i + Σ_{j ∈ pa(i)} W_ij X_j + ε_i,   ε_i ~ N(0, v_i),

so ``x = b + W x + ε`` and, with ``L = diag(v)^{-1/2} (I − W)`` (triangular in topological order),
``log p(x) = −½‖L x − diag(v)^{-1/2} b‖² − ½ Σ log(2π v_i)``. The joint is N(μ, Σ) with
``μ = (I − W)⁻¹ b`` and ``Σ = (I − W)⁻¹ diag(v) (I − W)⁻ᵀ`` (Koller & Friedman 2009, §7.2), computed
here by triangular solves in topological order (backward stable; no general inverse).

Length: about 400 lines of code (the parameter types, the validated network and its three densities);
the rest is docstrings with runnable examples, one per public name and method.

Examples:
    >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
    ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
    >>> g = joint(net)                                          # N(mu, Sigma) of (x, y)
    >>> print(g.mean, g.covariance)
    [1.  2.5] [[1.  2. ]
     [2.  4.5]]
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn import Structure
from gm.validation import is_concrete, require, require_weights

__all__ = [
    "Evidence",
    "Gaussian",
    "GaussianBayesNet",
    "GaussianStructure",
    "LinearGaussian",
    "LinearGaussianCPD",
    "as_structure",
    "joint",
    "log_density",
    "log_prob",
    "sample",
]

Parents = Sequence[Sequence[int]]
HIGHEST = jax.lax.Precision.HIGHEST  # full float32 matmuls also on accelerators (no TF32/bf16 passes)


class LinearGaussian(NamedTuple):
    """Parameters: ``weights f32[n, n]`` (row i: coefficients of X_i on its parents, 0 elsewhere),
    ``bias f32[n]``, ``variance f32[n]`` (noise variance of each node).

    Attributes:
      weights: ``f32[n, n]``, W[i, j] the coefficient of X_j in X_i's mean (0 unless j is a parent of i).
      bias: ``f32[n]``, b_i.
      variance: ``f32[n]``, v_i > 0.

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> params = net.params                                    # a LinearGaussian, the pytree leaves
      >>> print(params.weights, params.bias, params.variance)
      [[0. 0.]
       [2. 0.]] [1.  0.5] [1.  0.5]
    """

    weights: jax.Array
    bias: jax.Array
    variance: jax.Array


class LinearGaussianCPD(NamedTuple):
    """One node's conditional: X = bias + sum_p weights[p] * X_p + N(0, variance) (Python floats).

    Attributes:
      weights: ``{parent name: weight}``.
      bias: the intercept.
      variance: the noise variance.

    Examples:
      >>> LinearGaussianCPD(weights={"x": 2.0}, bias=0.5, variance=0.5).weights["x"]
      2.0
    """

    weights: dict[str, float]
    bias: float
    variance: float


class Gaussian(NamedTuple):
    """A multivariate normal: ``mean f32[n]``, ``covariance f32[n, n]``.

    Attributes:
      mean: ``f32[n]``.
      covariance: ``f32[n, n]``, symmetric positive (semi-)definite.

    Examples:
      >>> g = Gaussian(mean=jnp.zeros(2), covariance=jnp.eye(2))
      >>> print(log_prob(g, jnp.zeros(2)))                       # -log(2 pi)
      -1.8379
    """

    mean: jax.Array
    covariance: jax.Array


class Evidence(NamedTuple):
    """Continuous evidence: ``values f32[n]`` (ignored where unobserved) and ``observed bool[n]``.

    A batch is the same NamedTuple with a leading axis (``f32[B, n]``, ``bool[B, n]``); map over it with
    ``jax.vmap(f, in_axes=(None, 0))(net, evidence)``.

    Attributes:
      values: ``f32[n]``, the observed values (any number where unobserved).
      observed: ``bool[n]``, which variables are observed.

    Examples:
      >>> ev = Evidence(values=jnp.array([0.0, 4.5]), observed=jnp.array([False, True]))
      >>> values, observed = ev
      >>> observed.tolist()
      [False, True]
    """

    values: jax.Array
    observed: jax.Array


@dataclasses.dataclass(frozen=True)
class GaussianStructure:
    """The static, hashable part of a linear-Gaussian network: ``names`` and ``parents`` (indices).

    Construction validates: parent indices in range, no self-loops or repeated parents, no cycle
    (ValueError naming the variables at fault).

    Attributes:
      names: variable names, in variable order.
      parents: parent indices of each variable (the order of the weights' columns does not depend on it).

    Examples:
      >>> s = GaussianStructure(("x", "y", "z"), ((), (0,), (0, 1)))
      >>> s.topological_order, s.max_parents
      ((0, 1, 2), 2)
      >>> GaussianStructure(("x", "y"), ((1,), (0,)))
      Traceback (most recent call last):
      ...
      ValueError: parents describe a graph with a cycle: x -> y -> x
    """

    names: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        n = len(self.names)
        if len(self.parents) != n:
            raise ValueError(f"parents has {len(self.parents)} entries for {n} names")
        if len(set(self.names)) != n:
            dup = sorted({x for x in self.names if self.names.count(x) > 1})
            raise ValueError(f"variable names repeat: {dup}")
        for i, pa in enumerate(self.parents):
            for p in pa:
                if not isinstance(p, (int, np.integer)) or not 0 <= p < n or p == i:
                    raise ValueError(f"parents of {self.names[i]!r} contain {p!r}, not another variable index in [0, {n})")
            if len(set(pa)) != len(pa):
                raise ValueError(f"parents of {self.names[i]!r} repeat a variable: {pa}")
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from((p, c) for c, pa in enumerate(self.parents) for p in pa)
        if not nx.is_directed_acyclic_graph(graph):
            cycle = [self.names[u] for u, _ in nx.find_cycle(graph)]
            raise ValueError(f"parents describe a graph with a cycle: {' -> '.join(cycle + cycle[:1])}")

    @classmethod
    def from_indices(cls, parents: Parents, names: Sequence[str] | None = None) -> "GaussianStructure":
        """A structure from parent-index lists (names ``X0, X1, ...`` by default).

        Args:
          parents: one sequence of parent indices per variable.
          names: the variables' names.

        Returns:
          A validated `GaussianStructure`.

        Examples:
          >>> GaussianStructure.from_indices([[], [0]])
          GaussianStructure(names=('X0', 'X1'), parents=((), (0,)))
        """
        parents = tuple(tuple(int(p) for p in pa) for pa in parents)
        names = tuple(f"X{i}" for i in range(len(parents))) if names is None else tuple(str(x) for x in names)
        return cls(names, parents)

    @functools.cached_property
    def topological_order(self) -> tuple[int, ...]:
        """Parents before children, ties broken by variable order (`gm.bn.Structure.topological_order`).

        Examples:
          >>> GaussianStructure.from_indices([[1], []]).topological_order
          (1, 0)
        """
        return Structure(self.names, tuple(() for _ in self.names), self.parents).topological_order

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """``{name: position}`` of every variable.

        Examples:
          >>> GaussianStructure(("x", "y"), ((), (0,))).index
          {'x': 0, 'y': 1}
        """
        return {name: i for i, name in enumerate(self.names)}

    @functools.cached_property
    def max_parents(self) -> int:
        """The largest number of parents of any variable (0 for an empty graph).

        Examples:
          >>> GaussianStructure.from_indices([[], [0], [0, 1]]).max_parents
          2
        """
        return max((len(pa) for pa in self.parents), default=0)

    def lookup(self, name: str) -> int:
        """Index of variable ``name``; ValueError naming it if unknown.

        Args:
          name: a variable name.

        Returns:
          Its position, an ``int``.

        Raises:
          ValueError: an unknown name, listing the variables.

        Examples:
          >>> GaussianStructure(("x", "y"), ((), (0,))).lookup("y")
          1
        """
        try:
            return self.index[name]
        except KeyError:
            raise ValueError(f"unknown variable {name!r}; variables are {list(self.names)}") from None


def as_structure(parents_or_structure, names: Sequence[str] | None = None) -> GaussianStructure:
    """A `GaussianStructure` from a structure, a network or a ``parents`` index list.

    Args:
      parents_or_structure: a `GaussianStructure`, a `GaussianBayesNet` or parent-index lists.
      names: the names when ``parents_or_structure`` is index lists.

    Returns:
      The `GaussianStructure`.

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> as_structure(net) is net.structure, as_structure([[], [0]], ["x", "y"]).names
      (True, ('x', 'y'))
    """
    if isinstance(parents_or_structure, GaussianStructure):
        return parents_or_structure
    if isinstance(parents_or_structure, GaussianBayesNet):
        return parents_or_structure.structure
    return GaussianStructure.from_indices(parents_or_structure, names)


@jax.tree_util.register_pytree_node_class
class GaussianBayesNet:
    """A linear-Gaussian Bayesian network: `GaussianStructure` (static) and `LinearGaussian` leaves.

    The joint density factorises over the nodes: p(x) = prod_i N(x_i; b_i + W_i x, v_i).

    Attributes:
      structure: the `GaussianStructure` (static aux data of the pytree).
      params: the `LinearGaussian` leaves ``(weights f32[n, n], bias f32[n], variance f32[n])``.

    Examples:
      >>> net = GaussianBayesNet.from_dict(
      ...     parents={"y": ["x"]}, bias={"x": 20.0, "y": 1.0}, weights={"y": {"x": 0.5}},
      ...     variance={"x": 1.0, "y": 0.01})
      >>> net
      GaussianBayesNet(2 variables, 1 edges)
      >>> ev = net.evidence({"y": 11.0})               # Evidence(values f32[2], observed bool[2])
      >>> ev.observed.tolist()
      [False, True]
    """

    __slots__ = ("structure", "params")

    def __init__(self, structure: GaussianStructure, params: LinearGaussian):
        self.structure = structure
        self.params = LinearGaussian(*params)

    def tree_flatten(self):
        """The pytree protocol: the three parameter arrays as leaves, the `GaussianStructure` as aux data.

        Returns:
          ``((weights, bias, variance), structure)``.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> [leaf.shape for leaf in jax.tree_util.tree_leaves(net)]
          [(2, 2), (2,), (2,)]
        """
        return tuple(self.params), self.structure

    @classmethod
    def tree_unflatten(cls, structure, leaves):
        """The pytree protocol: a network from its structure and ``(weights, bias, variance)``.

        Args:
          structure: the `GaussianStructure`.
          leaves: ``(weights, bias, variance)``.

        Returns:
          A `GaussianBayesNet`.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> doubled = jax.tree_util.tree_map(lambda a: 2 * a, net)
          >>> print(doubled.variance)
          [2. 1.]
        """
        return cls(structure, LinearGaussian(*leaves))

    @property
    def names(self) -> tuple[str, ...]:
        """Variable names in variable order.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> net.names
          ('x', 'y')
        """
        return self.structure.names

    @property
    def parents(self) -> tuple[tuple[int, ...], ...]:
        """Parent indices of each variable.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> net.parents
          ((), (0,))
        """
        return self.structure.parents

    @property
    def n_vars(self) -> int:
        """Number of variables.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> net.n_vars
          2
        """
        return len(self.structure.names)

    @property
    def weights(self):
        """``f32[n, n]``: W[i, j], the coefficient of parent j in X_i's mean.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> print(net.weights)
          [[0. 0.]
           [2. 0.]]
        """
        return self.params.weights

    @property
    def bias(self):
        """``f32[n]``: the intercepts b_i.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> print(net.bias)
          [1.  0.5]
        """
        return self.params.bias

    @property
    def variance(self):
        """``f32[n]``: the noise variances v_i.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> print(net.variance)
          [1.  0.5]
        """
        return self.params.variance

    def index(self, name: str) -> int:
        """Index of variable ``name`` (`GaussianStructure.lookup`).

        Args:
          name: a variable name.

        Returns:
          Its position, an ``int``.

        Raises:
          ValueError: an unknown name.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> net.index("y")
          1
        """
        return self.structure.lookup(name)

    def parent_names(self, name: str) -> tuple[str, ...]:
        """Names of the parents of ``name``.

        Args:
          name: a variable name.

        Returns:
          A tuple of names.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> net.parent_names("y")
          ('x',)
        """
        return tuple(self.names[p] for p in self.parents[self.index(name)])

    def replace(self, params: LinearGaussian) -> "GaussianBayesNet":
        """The same structure with new parameters (not validated: the fits and pytree maps use it).

        Args:
          params: `LinearGaussian` ``(weights f32[n, n], bias f32[n], variance f32[n])``.

        Returns:
          A new `GaussianBayesNet`.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> print(net.replace(net.params._replace(bias=jnp.zeros(2))).bias)
          [0. 0.]
        """
        return GaussianBayesNet(self.structure, params)

    def __repr__(self) -> str:
        return f"GaussianBayesNet({self.n_vars} variables, {sum(len(p) for p in self.parents)} edges)"

    def evidence(self, assignment: Mapping[str, float] | None = None, dtype=None) -> Evidence:
        """`Evidence` from ``{name: value}``; ValueError naming an unknown variable or a non-finite value.

        Args:
          assignment: ``{name: value}`` of the observed variables (None: nothing observed).
          dtype: of the values (default: the bias's).

        Returns:
          `Evidence` ``(values f32[n], observed bool[n])``.

        Raises:
          ValueError: an unknown name or a non-finite value.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> ev = net.evidence({"y": 4.5})
          >>> print(ev.values, ev.observed)
          [0.  4.5] [False  True]
        """
        values = np.zeros(self.n_vars, dtype=np.float64)
        observed = np.zeros(self.n_vars, dtype=bool)
        for name, value in (assignment or {}).items():
            i = self.index(name)
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"evidence for {name!r} must be finite, got {value}")
            values[i], observed[i] = value, True
        return Evidence(jnp.asarray(values, dtype or self.bias.dtype), jnp.asarray(observed))

    def cpd(self, name: str) -> LinearGaussianCPD:
        """`LinearGaussianCPD` ``(weights {parent: weight}, bias, variance)`` of ``name``, Python floats.

        Args:
          name: a variable name.

        Returns:
          `LinearGaussianCPD`.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> net.cpd("y")
          LinearGaussianCPD(weights={'x': 2.0}, bias=0.5, variance=0.5)
        """
        i = self.index(name)
        w = np.asarray(self.weights[i])
        return LinearGaussianCPD({self.names[p]: float(w[p]) for p in self.parents[i]}, float(self.bias[i]),
                                 float(self.variance[i]))

    @classmethod
    def from_dict(
        cls,
        *,
        parents: Mapping[str, Sequence[str]],
        bias: Mapping[str, float],
        variance: Mapping[str, float],
        weights: Mapping[str, Mapping[str, float] | Sequence[float]] | None = None,
        names: Sequence[str] | None = None,
        dtype=None,
    ) -> "GaussianBayesNet":
        """Build and validate a network from per-variable dictionaries.

        Args:
          parents: ``{child: [parent names]}``; variables missing from it are roots.
          bias, variance: ``{name: float}`` for every variable; variances must be positive.
          weights: ``{child: {parent: w}}`` or ``{child: [w per parent, in parents' order]}``.
          names: variable order (default: the order of ``bias``).
          dtype: of the leaves (default float32, or float64 under ``jax.enable_x64``).

        Returns:
          The validated `GaussianBayesNet`.

        Raises:
          ValueError: an unknown name, a missing bias or variance, a weight on a non-parent, a cycle,
            a non-positive variance or non-finite values.

        Examples:
          >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
          ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
          >>> net.structure
          GaussianStructure(names=('x', 'y'), parents=((), (0,)))
        """
        weights = weights or {}
        names = tuple(bias) if names is None else tuple(names)
        index = {n: i for i, n in enumerate(names)}
        for where, table in (("parents", parents), ("weights", weights), ("variance", variance)):
            for k in table:
                if k not in index:
                    raise ValueError(f"{where} names unknown variable {k!r}")
        for n in names:
            for where, table in (("bias", bias), ("variance", variance)):
                if n not in table:
                    raise ValueError(f"{where} has no entry for variable {n!r}")
        pa_idx = []
        for n in names:
            pa = list(parents.get(n, ()))
            for p in pa:
                if p not in index:
                    raise ValueError(f"parent {p!r} of {n!r} is not a variable")
            pa_idx.append(tuple(index[p] for p in pa))
        structure = GaussianStructure(names, tuple(pa_idx))
        n = len(names)
        w = np.zeros((n, n))
        for c, row in weights.items():
            i, pa = index[c], list(parents.get(c, ()))
            if isinstance(row, Mapping):
                for p, value in row.items():
                    if p not in pa:
                        raise ValueError(f"weights of {c!r} name {p!r}, which is not one of its parents {pa}")
                    w[i, index[p]] = float(value)
            else:
                row = np.asarray(row, np.float64).reshape(-1)
                if row.size != len(pa):
                    raise ValueError(f"weights of {c!r} have {row.size} entries for {len(pa)} parents {pa}")
                w[i, [index[p] for p in pa]] = row
        v = np.array([float(variance[x]) for x in names])
        bad = [x for x, vi in zip(names, v) if not (np.isfinite(vi) and vi > 0)]
        if bad:
            raise ValueError(f"variance must be positive and finite; not so for {bad}")
        b = np.array([float(bias[x]) for x in names])
        if not np.all(np.isfinite(b)) or not np.all(np.isfinite(w)):
            raise ValueError("bias and weights must be finite")
        dtype = dtype or jnp.zeros(()).dtype
        return cls(structure, LinearGaussian(jnp.asarray(w, dtype), jnp.asarray(b, dtype), jnp.asarray(v, dtype)))


def _permuted_factor(model: LinearGaussian, structure: GaussianStructure):
    """``(order, I − W)`` with rows and columns in topological order (unit lower triangular)."""
    order = np.asarray(structure.topological_order, int)
    w = model.weights[np.ix_(order, order)]
    return order, jnp.eye(len(order), dtype=w.dtype) - w


def joint(model: LinearGaussian | GaussianBayesNet, parents: Parents | GaussianStructure | None = None) -> Gaussian:
    """The joint Gaussian N(μ, Σ) of all variables.

    ``μ = (I − W)⁻¹ b``, ``Σ = A diag(v) Aᵀ`` with ``A = (I − W)⁻¹`` from a unit-triangular solve in
    topological order.

    Args:
      model: a `GaussianBayesNet`, or `LinearGaussian` parameters with ``parents``.
      parents: the structure when ``model`` is bare parameters (static).

    Returns:
      `Gaussian` with ``mean f32[n]``, ``covariance f32[n, n]`` in variable order.

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> g = joint(net.params, [[], [0]])                       # bare parameters and parent lists
      >>> print(g.mean, g.covariance[1, 1])                      # Var(y) = 2^2 * 1 + 0.5
      [1.  2.5] 4.5
    """
    model, structure = _split(model, parents)
    n = model.bias.shape[-1]
    order, eye_minus_w = _permuted_factor(model, structure)
    inv = np.argsort(order)
    a = jax.scipy.linalg.solve_triangular(eye_minus_w, jnp.eye(n, dtype=model.bias.dtype), lower=True,
                                          unit_diagonal=True)
    mean = (a @ model.bias[order])[inv]
    scaled = a * jnp.sqrt(model.variance[order])[None, :]
    cov = jnp.matmul(scaled, scaled.T, precision=HIGHEST)[np.ix_(inv, inv)]
    return Gaussian(mean, cov)


def _split(model, parents) -> tuple[LinearGaussian, GaussianStructure]:
    if isinstance(model, GaussianBayesNet):
        return model.params, model.structure
    if parents is None:
        raise TypeError("bare LinearGaussian parameters need parents (or pass a GaussianBayesNet)")
    model = LinearGaussian(*model)
    structure = as_structure(parents)
    n = model.bias.shape[-1]
    if len(structure.names) != n:
        raise ValueError(f"parents has {len(structure.names)} entries for a model of {n} variables")
    return model, structure


def sample(key, model: LinearGaussian | GaussianBayesNet, parents=None, num_samples: int | None = None) -> jax.Array:
    """Ancestral samples ``f32[num_samples, n_vars]``: X_i = b_i + W_i·x + √v_i ε_i in topological order.

    Call as ``sample(key, net, num_samples)`` or ``sample(key, params, parents, num_samples)``
    (``num_samples`` static).

    Args:
      key: a `jax.random` key.
      model: a `GaussianBayesNet`, or `LinearGaussian` parameters with ``parents``.
      parents: the structure of bare parameters, or (with a network) the number of samples.
      num_samples: the number of samples (static).

    Returns:
      ``f32[num_samples, n_vars]`` in variable order.

    Raises:
      ValueError: a missing or negative number of samples.

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> x = sample(jax.random.key(0), net, 10_000)
      >>> x.shape, bool(abs(x[:, 1].mean() - 2.5) < 0.1)
      ((10000, 2), True)
    """
    if isinstance(model, GaussianBayesNet) and num_samples is None:
        parents, num_samples = None, parents
    if num_samples is None or int(num_samples) < 0:
        raise ValueError(f"num_samples must be a non-negative number of samples, got {num_samples}")
    n = int(num_samples)
    model, structure = _split(model, parents)
    order, eye_minus_w = _permuted_factor(model, structure)
    inv = np.argsort(order)
    noise = jax.random.normal(key, (int(n), len(order)), model.bias.dtype) * jnp.sqrt(model.variance[order])
    # (I − W) xᵀ = b + ε in topological order: one unit-lower-triangular solve for all samples
    rhs = (model.bias[order][None, :] + noise).T
    x = jax.scipy.linalg.solve_triangular(eye_minus_w, rhs, lower=True, unit_diagonal=True).T
    return x[:, inv]


def log_density(model: LinearGaussian | GaussianBayesNet, x, parents=None) -> jax.Array:
    """log p(x) of complete records as the sum of node terms log N(x_i; b_i + W_i·x, v_i).

    Args:
      model: a `GaussianBayesNet`, or parameters with ``parents``.
      x: ``f32[..., n]``.

      parents: the structure when ``model`` is bare parameters.

    Returns:
      ``f32[...]``; exact and O(n + edges) per record (no joint covariance).

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> x = jnp.array([[1.0, 2.5], [0.0, 0.0]])
      >>> print(log_density(net, x))
      [-1.4913 -2.2413]
      >>> print(log_prob(joint(net), x))                         # the same through the joint
      [-1.4913 -2.2413]
    """
    model, _ = _split(model, parents)
    x = jnp.asarray(x, model.bias.dtype)
    resid = x - model.bias - jnp.einsum("...j,ij->...i", x, model.weights, precision=HIGHEST)
    terms = -0.5 * (jnp.log(2 * jnp.pi * model.variance) + resid**2 / model.variance)
    return jnp.sum(terms, axis=-1)


def log_prob(gaussian: Gaussian, x) -> jax.Array:
    """log N(x; μ, Σ) for ``x: f32[..., n]`` under a `Gaussian` (e.g. from `joint`).

    log N(x; μ, Σ) = -½ (x - μ)ᵀ Σ⁻¹ (x - μ) - ½ log det(2π Σ).

    Args:
      gaussian: a `Gaussian`.
      x: ``f32[..., n]``.

    Returns:
      ``f32[...]``.

    Examples:
      >>> print(log_prob(Gaussian(jnp.zeros(1), jnp.eye(1)), jnp.array([[0.0], [1.0]])))
      [-0.9189 -1.4189]
    """
    return jax.scipy.stats.multivariate_normal.logpdf(x, gaussian.mean, gaussian.covariance)


def check_data(data, num_vars: int, what: str = "data") -> jax.Array:
    """``data`` as an ``[N, num_vars]`` float array with N >= 1; ValueError naming the shape otherwise, and
    (eager, or compiled under `gm.validation.checked`) naming the record and column of a NaN or inf."""
    data = jnp.asarray(data)
    if not jnp.issubdtype(data.dtype, jnp.floating):
        data = data.astype(jnp.zeros(()).dtype)
    if data.ndim != 2 or data.shape[1] != num_vars:
        raise ValueError(f"{what} must have shape (N, {num_vars}) (one column per variable), got {data.shape}")
    if data.shape[0] < 1:
        raise ValueError(f"{what} has no records (shape {data.shape}): a fit needs at least one")
    values = np.asarray(data) if is_concrete(data) else data

    def describe(at):
        if at is None:
            return f"{what} must be finite (no NaN or inf)"
        return f"{what}[{at[0]}, {at[1]}] = {float(values[at])} (record {at[0]}, column {at[1]}): {what} must be finite"

    require(jnp.isfinite(values) if not is_concrete(data) else np.isfinite(values), describe)
    return data


def check_weights(weights, num_records: int, dtype) -> jax.Array:
    """``weights`` as ``f[N]`` (ones when None); ValueError naming the shape, and (eager, or under
    `gm.validation.checked`) the record of a negative or non-finite weight."""
    if weights is None:
        return jnp.ones(num_records, dtype)
    w = jnp.asarray(weights, dtype)
    if w.shape != (num_records,):
        raise ValueError(f"weights must have shape ({num_records},) (one per record), got {w.shape}")
    require_weights(w, unit="record")
    return w


def any_tracer(*xs: Any) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))
