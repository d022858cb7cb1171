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
    """Per continuous variable i (tuples, one entry per variable): ``bias[i] f32[*cards(D_i)]``,
    ``weights[i] f32[*cards(D_i), n_c]`` (coefficients on all continuous variables, 0 off C_i),
    ``variance[i] f32[*cards(D_i)]``."""

    bias: tuple
    weights: tuple
    variance: tuple


@dataclasses.dataclass(frozen=True)
class CLGStructure:
    """Static part: the continuous `GaussianStructure` (names, continuous parents) and each continuous
    variable's discrete parents (indices into the discrete network's variables)."""

    continuous: GaussianStructure
    discrete_parents: tuple[tuple[int, ...], ...]

    @functools.cached_property
    def components(self) -> tuple[tuple[int, ...], ...]:
        """Connected components of the continuous-only graph, each sorted."""
        import networkx as nx

        graph = nx.Graph()
        graph.add_nodes_from(range(len(self.continuous.names)))
        graph.add_edges_from((p, c) for c, pa in enumerate(self.continuous.parents) for p in pa)
        return tuple(sorted(tuple(sorted(c)) for c in nx.connected_components(graph)))


@jax.tree_util.register_pytree_node_class
class CLGNet:
    """A conditional linear-Gaussian network: a discrete `BayesNet` and CLG continuous variables.

    Build with `CLGNet.from_dict`.
    """

    __slots__ = ("discrete", "structure", "params")

    def __init__(self, discrete: BayesNet, structure: CLGStructure, params: CLGParams):
        self.discrete, self.structure, self.params = discrete, structure, CLGParams(*params)

    def tree_flatten(self):
        return (self.discrete, self.params), self.structure

    @classmethod
    def tree_unflatten(cls, structure, leaves):
        return cls(leaves[0], structure, leaves[1])

    @property
    def continuous_names(self) -> tuple[str, ...]:
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
        """``(discrete int32[n_d], continuous Evidence)`` from ``{name: state or value}``."""
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
    """``table f32[*cards]`` the posterior over the queried discrete variables, ``log_evidence f32[]``
    the log density of all evidence (discrete probabilities times continuous densities)."""

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
      ``-inf`` (as `gm.bn.query`).
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
