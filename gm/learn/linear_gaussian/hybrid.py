"""Conditional linear-Gaussian (CLG) networks: discrete parents of Gaussian children, exact discrete queries.

Discrete variables have discrete parents only (a `gm.bn.BayesNet`); each continuous variable X_i has
continuous parents C_i and discrete parents D_i, with one linear regression per configuration d of D_i:

    X_i | c, d ~ N(b_i[d] + W_i[d] · c, v_i[d])        (Lauritzen 1992; Koller & Friedman 2009, §14.3)

**Discrete posterior given continuous evidence.** For a discrete assignment d the continuous variables
form a linear-Gaussian network, so p(x_o | d) is the Gaussian `log_evidence` of the observed continuous
values (unobserved ones integrated out exactly). The continuous variables split into connected
components (of the continuous-only graph); component k contributes a factor ``φ_k(d_{D_k})`` over the
union D_k of its members' discrete parents: the continuous densities become soft evidence on their
discrete parents. Each factor enters `gm.bn` as an observed binary child of D_k with
``P(on | d) = φ_k(d) / max φ_k`` (exact; the scale goes back into the log evidence), and one `gm.bn.query`
contracts the discrete network with all of them. Cost: Π_{j ∈ D_k} |d_j| Gaussian factorisations per
component, so components with many discrete parents are the limit.

Examples:
    >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
    >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
    >>> d, c = net.evidence({"x": 1.5})                        # x | Class ~ N(0 or 2, 1), x = 1.5 observed
    >>> answer = discrete_query(net, ["Class"], d, c)
    >>> print(answer.table, answer.log_evidence)              # ∝ 0.5 N(1.5; 0, 1), 0.5 N(1.5; 2, 1)
    [0.2689 0.7311] -1.4238
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn import BayesNet, Structure
from gm.bn import log_evidence as bn_log_evidence
from gm.bn import query as bn_query
from gm.learn.linear_gaussian.inference import log_evidence as gaussian_log_evidence
from gm.learn.linear_gaussian.model import Evidence, GaussianBayesNet, GaussianStructure, LinearGaussian

__all__ = ["CLGNet", "CLGParams", "CLGStructure", "HybridAnswer", "discrete_query"]


class CLGParams(NamedTuple):
    """Per continuous variable i (tuples, one entry per variable): the regression of each discrete configuration.

    X_i | c, d ~ N(bias[i][d] + weights[i][d] · c, variance[i][d]).

    Attributes:
      bias: ``bias[i]: f32[*cards(D_i)]``.
      weights: ``weights[i]: f32[*cards(D_i), n_c]`` (coefficients on all continuous variables, 0 off C_i).
      variance: ``variance[i]: f32[*cards(D_i)]``.

    Examples:
      >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
      >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
      >>> print(net.params.bias[0], net.params.variance[0])
      [0. 2.] [1. 1.]
    """

    bias: tuple
    weights: tuple
    variance: tuple


@dataclasses.dataclass(frozen=True)
class CLGStructure:
    """Static part: the continuous `GaussianStructure` (names, continuous parents) and each continuous
    variable's discrete parents (indices into the discrete network's variables).

    Attributes:
      continuous: the `GaussianStructure` of the continuous variables.
      discrete_parents: ``discrete_parents[i]``, indices into the discrete network of D_i.

    Examples:
      >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
      >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
      >>> net.structure.discrete_parents, net.structure.components
      (((0,),), ((0,),))
    """

    continuous: GaussianStructure
    discrete_parents: tuple[tuple[int, ...], ...]

    @functools.cached_property
    def components(self) -> tuple[tuple[int, ...], ...]:
        """Connected components of the continuous-only graph, each sorted.

        Examples:
          >>> CLGStructure(GaussianStructure(("x", "y", "z"), ((), (0,), ())), ((), (), ())).components
          ((0, 1), (2,))
        """
        import networkx as nx

        graph = nx.Graph()
        graph.add_nodes_from(range(len(self.continuous.names)))
        graph.add_edges_from((p, c) for c, pa in enumerate(self.continuous.parents) for p in pa)
        return tuple(sorted(tuple(sorted(c)) for c in nx.connected_components(graph)))


@jax.tree_util.register_pytree_node_class
class CLGNet:
    """A conditional linear-Gaussian network: a discrete `BayesNet` and CLG continuous variables.

    Build with `CLGNet.from_dict`. p(d, x) = P(d) prod_i N(x_i; b_i[d] + W_i[d] · x, v_i[d]).

    Attributes:
      discrete: the discrete `gm.bn.BayesNet`.
      structure: the `CLGStructure` (static).
      params: the `CLGParams` leaves.

    Examples:
      >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
      >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
      >>> net.continuous_names, net.discrete.names
      (('x',), ('Class',))
    """

    __slots__ = ("discrete", "structure", "params")

    def __init__(self, discrete: BayesNet, structure: CLGStructure, params: CLGParams):
        self.discrete, self.structure, self.params = discrete, structure, CLGParams(*params)

    def tree_flatten(self):
        """The pytree protocol: ``((discrete network, params), structure)``.

        Returns:
          The children (the discrete `BayesNet` and the `CLGParams`) and the static `CLGStructure`.

        Examples:
          >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
          >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
          >>> len(jax.tree_util.tree_leaves(net))                  # P(Class), bias, weights, variance
          4
        """
        return (self.discrete, self.params), self.structure

    @classmethod
    def tree_unflatten(cls, structure, leaves):
        """The pytree protocol: a network from its structure and ``(discrete network, params)``.

        Args:
          structure: the `CLGStructure`.
          leaves: ``(discrete BayesNet, CLGParams)``.

        Returns:
          A `CLGNet`.

        Examples:
          >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
          >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
          >>> print(jax.tree_util.tree_map(lambda a: a + 1, net).params.bias[0])
          [1. 3.]
        """
        return cls(leaves[0], structure, leaves[1])

    @property
    def continuous_names(self) -> tuple[str, ...]:
        """Names of the continuous variables, in their order.

        Examples:
          >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
          >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
          >>> net.continuous_names
          ('x',)
        """
        return self.structure.continuous.names

    @classmethod
    def from_dict(cls, discrete: BayesNet, *, parents: Mapping[str, Sequence[str]], bias: Mapping, variance: Mapping,
                  weights: Mapping | None = None, names: Sequence[str] | None = None, dtype=None) -> "CLGNet":
        """Continuous variables over a discrete network.

        Args:
          discrete: the discrete `gm.bn.BayesNet` (discrete parents only).
          parents: ``{continuous name: [parents]}``, discrete and continuous parents mixed.
          bias, variance: ``{name: array of shape cards(D_i)}`` (a float when D_i is empty).
          weights: ``{name: array of shape (*cards(D_i), |C_i|)}``, C_i in the order listed in parents.
          names: continuous variable order (default: the order of ``bias``).
          dtype: of the parameters (default: JAX's float).

        Returns:
          The validated `CLGNet`.

        Raises:
          ValueError: a name both discrete and continuous, an unknown parent, parameters of the wrong
            shape, or a non-positive variance.

        Examples:
          >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
          >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
          >>> net.structure.continuous
          GaussianStructure(names=('x',), parents=((),))
        """
        weights = weights or {}
        names = tuple(bias) if names is None else tuple(names)
        cont_index = {x: i for i, x in enumerate(names)}
        overlap = sorted(set(names) & set(discrete.names))
        if overlap:
            raise ValueError(f"continuous variables {overlap} are also discrete variables")
        cpa, dpa = [], []
        for x in names:
            pa = list(parents.get(x, ()))
            unknown = [p for p in pa if p not in cont_index and p not in discrete.names]
            if unknown:
                raise ValueError(f"parents of {x!r} name unknown variables {unknown}")
            cpa.append(tuple(cont_index[p] for p in pa if p in cont_index))
            dpa.append(tuple(discrete.index(p) for p in pa if p not in cont_index))
        structure = CLGStructure(GaussianStructure(names, tuple(cpa)), tuple(dpa))
        dtype = dtype or jnp.zeros(()).dtype
        n = len(names)
        b_out, w_out, v_out = [], [], []
        for i, x in enumerate(names):
            shape = tuple(discrete.cards[d] for d in dpa[i])
            try:
                b = np.broadcast_to(np.asarray(bias[x], np.float64), shape)
                v = np.broadcast_to(np.asarray(variance[x], np.float64), shape)
                w_in = np.broadcast_to(np.asarray(weights.get(x, np.zeros(len(cpa[i]))), np.float64),
                                       shape + (len(cpa[i]),))
            except (KeyError, ValueError) as err:
                raise ValueError(f"CLG parameters of {x!r}: expected bias/variance of shape {shape} and weights "
                                 f"of shape {shape + (len(cpa[i]),)} ({err})") from None
            if not np.all(v > 0):
                raise ValueError(f"variance of {x!r} must be positive in every discrete configuration")
            w = np.zeros(shape + (n,))
            w[..., list(cpa[i])] = w_in
            b_out.append(jnp.asarray(b, dtype))
            w_out.append(jnp.asarray(w, dtype))
            v_out.append(jnp.asarray(v, dtype))
        return cls(discrete, structure, CLGParams(tuple(b_out), tuple(w_out), tuple(v_out)))

    def evidence(self, assignment: Mapping[str, object] | None = None):
        """``(discrete int32[n_d], continuous Evidence)`` from ``{name: state or value}``.

        Args:
          assignment: ``{name: state name or index}`` for discrete and ``{name: value}`` for continuous
            variables (None: nothing observed).

        Returns:
          ``(int32[n_d] with -1 unobserved, Evidence(values f32[n_c], observed bool[n_c]))``.

        Examples:
          >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
          >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
          >>> d, c = net.evidence({"Class": "b", "x": 1.5})
          >>> d.tolist(), c.values.tolist(), c.observed.tolist()
          ([1], [1.5], [True])
        """
        assignment = dict(assignment or {})
        disc = {k: v for k, v in assignment.items() if k in self.discrete.names}
        cont = {k: v for k, v in assignment.items() if k not in self.discrete.names}
        values = np.zeros(len(self.continuous_names))
        observed = np.zeros(len(self.continuous_names), bool)
        for k, v in cont.items():
            i = self.structure.continuous.lookup(k)
            values[i], observed[i] = float(v), True
        dtype = self.params.bias[0].dtype
        return self.discrete.evidence(disc), Evidence(jnp.asarray(values, dtype), jnp.asarray(observed))


def _component_factor(net: CLGNet, comp: tuple[int, ...], evidence: Evidence):
    """``(discrete parent indices D_k, log φ_k f32[*cards(D_k)])`` for one continuous component."""
    s = net.structure
    union = tuple(sorted({d for i in comp for d in s.discrete_parents[i]}))
    cards = tuple(net.discrete.cards[d] for d in union)
    configs = np.stack(np.unravel_index(np.arange(int(np.prod(cards, dtype=int))), cards), 1) if union else np.zeros((1, 0), int)
    local = {c: j for j, c in enumerate(comp)}
    sub = GaussianStructure(tuple(s.continuous.names[i] for i in comp),
                            tuple(tuple(local[p] for p in s.continuous.parents[i]) for i in comp))
    cols = np.asarray(comp, int)
    bias, weights, variance = [], [], []
    for i in comp:
        pos = [union.index(d) for d in s.discrete_parents[i]]
        index = tuple(configs[:, p] for p in pos)  # per config, the node's own parent states
        bias.append(net.params.bias[i][index] if pos else jnp.broadcast_to(net.params.bias[i], (len(configs),)))
        variance.append(net.params.variance[i][index] if pos else jnp.broadcast_to(net.params.variance[i], (len(configs),)))
        w = net.params.weights[i][index] if pos else jnp.broadcast_to(net.params.weights[i], (len(configs),) + net.params.weights[i].shape)
        weights.append(w[:, cols])
    params = LinearGaussian(jnp.stack(weights, 1), jnp.stack(bias, 1), jnp.stack(variance, 1))
    sub_ev = Evidence(evidence.values[cols], evidence.observed[cols])
    log_phi = jax.vmap(lambda p: gaussian_log_evidence(GaussianBayesNet(sub, p), sub_ev))(params)
    return union, log_phi.reshape(cards)


class HybridAnswer(NamedTuple):
    """The answer of `discrete_query`.

    Attributes:
      table: ``f32[*cards]``, the posterior over the queried discrete variables.
      log_evidence: ``f32[]``, the log density of all evidence (discrete probabilities times continuous
        densities).

    Examples:
      >>> table, log_evidence = HybridAnswer(jnp.array([0.25, 0.75]), jnp.array(-1.4))
      >>> table.shape
      (2,)
    """

    table: jax.Array
    log_evidence: jax.Array


def discrete_query(net: CLGNet, names: Sequence[str], discrete_evidence, continuous_evidence: Evidence) -> HybridAnswer:
    """Exact P(names | discrete evidence, continuous evidence) for discrete ``names`` (static).

    Args:
      net: the `CLGNet`.
      names: discrete variables (the table's axes, in this order).
      discrete_evidence: ``int32[n_d]``, -1 unobserved.
      continuous_evidence: `Evidence` over the continuous variables (``values f32[n_c]``, ``observed bool[n_c]``).

    Returns:
      `HybridAnswer`; ``jax.vmap`` over evidence works. Impossible discrete evidence gives a zero table and
      ``-inf`` (as `gm.bn.query`). P(d | e) ∝ P(d, e_d) prod_k φ_k(d), φ_k the Gaussian evidence of
      component k.

    Examples:
      >>> disc = BayesNet.from_dict({"Class": ["a", "b"]}, {}, {"Class": [0.5, 0.5]})
      >>> net = CLGNet.from_dict(disc, parents={"x": ["Class"]}, bias={"x": [0.0, 2.0]}, variance={"x": 1.0})
      >>> d, c = net.evidence({"x": 1.5})
      >>> xs = jnp.array([[-1.0], [1.0], [3.0]])                  # three continuous evidence sets
      >>> batch = jax.vmap(lambda v: discrete_query(net, ["Class"], d, c._replace(values=v)))(xs)
      >>> print(batch.table[:, 1])                              # P(Class = b | x)
      [0.018  0.5    0.982 ]
    """
    if isinstance(names, str):
        names = [names]
    for x in names:
        net.discrete.index(x)
    base = net.discrete
    st = base.structure
    extra_names, extra_states, extra_parents, extra_cpts, shift = [], [], [], [], 0.0
    for k, comp in enumerate(net.structure.components):
        union, log_phi = _component_factor(net, comp, continuous_evidence)
        top = jnp.max(log_phi)
        top = jnp.where(jnp.isfinite(top), top, 0.0)
        like = jnp.exp(log_phi - top)
        shift = shift + top
        extra_names.append(f"__clg_component_{k}")
        extra_states.append(("off", "on"))
        extra_parents.append(union)
        extra_cpts.append(jnp.stack([1.0 - like, like], axis=-1))
    structure = Structure(st.names + tuple(extra_names), st.states + tuple(extra_states), st.parents + tuple(extra_parents))
    augmented = BayesNet(structure, tuple(base.cpts) + tuple(extra_cpts))
    ev = jnp.concatenate([jnp.asarray(discrete_evidence, jnp.int32), jnp.ones(len(extra_names), jnp.int32)])
    table = bn_query(augmented, list(names), ev)
    return HybridAnswer(table, bn_log_evidence(augmented, ev) + shift)
