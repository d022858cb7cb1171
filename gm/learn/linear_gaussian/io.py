"""Linear-Gaussian networks on disk and in pgmpy.

pgmpy (1.1.0) stores a ``LinearGaussianBayesianNetwork`` as JSON (``LinearGaussianBayesianNetwork.save``
and ``.load``; the bnlearn networks ecoli70, magic-niab, magic-irri and arth150 ship in this form):

    {"nodes": [...], "arcs": [[parent, child], ...],
     "cpds": {name: {"coefficients": {"(Intercept)": [b], parent: [w], ...},
                     "variance": [v], "parents": [parent, ...]}}}

pgmpy writes no BIF-like text for Gaussian networks, so JSON is the one file format.
"""

from __future__ import annotations

import json
import os

import numpy as np

from gm.learn.linear_gaussian.model import GaussianBayesNet

__all__ = ["format_json", "from_pgmpy", "parse_json", "read_json", "to_json_dict", "to_pgmpy", "write_json"]

INTERCEPT = "(Intercept)"


def _scalar(value, where: str) -> float:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != 1:
        raise ValueError(f"Gaussian JSON: {where} must be one number (or a one-element list), got {value!r}")
    return float(arr[0])


def parse_json(text: str | dict, *, dtype=None) -> GaussianBayesNet:
    """A validated `GaussianBayesNet` from pgmpy's JSON text (or the decoded dict); see `read_json`.

    Args:
      text: the JSON text, or the dict it decodes to (module docstring).
      dtype: of the parameters (default: JAX's float).

    Returns:
      The `GaussianBayesNet`, variables in the ``nodes`` order.

    Raises:
      ValueError: naming what is missing or inconsistent (a CPD, an intercept, a coefficient, the arcs).

    Examples:
      >>> net = parse_json({"nodes": ["x", "y"], "arcs": [["x", "y"]], "cpds": {
      ...     "x": {"coefficients": {"(Intercept)": [1.0]}, "variance": [1.0], "parents": []},
      ...     "y": {"coefficients": {"(Intercept)": [0.5], "x": [2.0]}, "variance": [0.5], "parents": ["x"]}}})
      >>> net.cpd("y")
      LinearGaussianCPD(weights={'x': 2.0}, bias=0.5, variance=0.5)
    """
    data = json.loads(text) if isinstance(text, (str, bytes)) else text
    if not isinstance(data, dict) or "cpds" not in data:
        raise ValueError("Gaussian JSON: expected an object with 'nodes', 'arcs' and 'cpds' (pgmpy's format)")
    cpds = data["cpds"]
    names = [str(x) for x in data.get("nodes", list(cpds))]
    missing = [x for x in names if x not in cpds]
    if missing:
        raise ValueError(f"Gaussian JSON: no CPD for {missing}")
    extra = [x for x in cpds if x not in names]
    if extra:
        raise ValueError(f"Gaussian JSON: CPDs for undeclared nodes {extra}")
    parents, bias, variance, weights = {}, {}, {}, {}
    for name in names:
        cpd = cpds[name]
        pa = [str(p) for p in cpd.get("parents", [])]
        coef = cpd.get("coefficients", {})
        if INTERCEPT not in coef:
            raise ValueError(f"Gaussian JSON: the CPD of {name!r} has no '{INTERCEPT}' coefficient")
        absent = [p for p in pa if p not in coef]
        if absent:
            raise ValueError(f"Gaussian JSON: the CPD of {name!r} has no coefficient for parents {absent}")
        stray = [k for k in coef if k != INTERCEPT and k not in pa]
        if stray:
            raise ValueError(f"Gaussian JSON: the CPD of {name!r} has coefficients {stray} for non-parents")
        parents[name] = pa
        bias[name] = _scalar(coef[INTERCEPT], f"the intercept of {name!r}")
        weights[name] = {p: _scalar(coef[p], f"the coefficient of {p!r} in {name!r}") for p in pa}
        variance[name] = _scalar(cpd.get("variance"), f"the variance of {name!r}")
    arcs = {(str(a), str(b)) for a, b in data.get("arcs", [])}
    implied = {(p, c) for c, pa in parents.items() for p in pa}
    if arcs and arcs != implied:
        diff = sorted(arcs ^ implied)[:5]
        raise ValueError(f"Gaussian JSON: 'arcs' disagree with the CPDs' parents, e.g. {diff}")
    return GaussianBayesNet.from_dict(parents=parents, bias=bias, variance=variance, weights=weights,
                                      names=names, dtype=dtype)


def read_json(path: str | os.PathLike, *, dtype=None) -> GaussianBayesNet:
    """Read a linear-Gaussian network from pgmpy's JSON file (variables in the file's ``nodes`` order).

    Args:
      path: the JSON file.
      dtype: of the parameters (default: JAX's float).

    Returns:
      The `GaussianBayesNet` (see `parse_json`).

    Examples:
      >>> from gm.data.networks import gaussian_json_path
      >>> read_json(gaussian_json_path("ecoli70"))            # bnlearn's ecoli70, as pgmpy ships it
      GaussianBayesNet(46 variables, 70 edges)
    """
    with open(os.fspath(path), encoding="utf-8") as f:
        return parse_json(f.read(), dtype=dtype)


def to_json_dict(net: GaussianBayesNet) -> dict:
    """pgmpy's JSON structure (a dict) for ``net``; parameters as Python floats (float64 repr).

    Args:
      net: the `GaussianBayesNet`.

    Returns:
      ``{"nodes": [...], "arcs": [[parent, child], ...], "cpds": {...}}``.

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> to_json_dict(net)["cpds"]["y"]
      {'coefficients': {'(Intercept)': [0.5], 'x': [2.0]}, 'variance': [0.5], 'parents': ['x']}
    """
    w, b, v = (np.asarray(a, np.float64) for a in net.params)
    cpds = {}
    for i, name in enumerate(net.names):
        pa = [net.names[p] for p in net.parents[i]]
        coef = {INTERCEPT: [float(b[i])]}
        coef.update({p: [float(w[i, j])] for p, j in zip(pa, net.parents[i])})
        cpds[name] = {"coefficients": coef, "variance": [float(v[i])], "parents": pa}
    arcs = [[net.names[p], c] for c, pa in zip(net.names, net.parents) for p in pa]
    return {"nodes": list(net.names), "arcs": arcs, "cpds": cpds}


def format_json(net: GaussianBayesNet) -> str:
    """pgmpy's JSON text for ``net`` (indent 4, as ``LinearGaussianBayesianNetwork.save`` writes).

    Args:
      net: the `GaussianBayesNet`.

    Returns:
      The JSON text; ``parse_json(format_json(net))`` has the same structure and parameters.

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> parse_json(format_json(net)).cpd("y")
      LinearGaussianCPD(weights={'x': 2.0}, bias=0.5, variance=0.5)
    """
    return json.dumps(to_json_dict(net), indent=4)


def write_json(net: GaussianBayesNet, path: str | os.PathLike) -> None:
    """Write ``net`` as pgmpy's JSON (readable by ``LinearGaussianBayesianNetwork.load``).

    Args:
      net: the `GaussianBayesNet`.
      path: the file to write.

    Returns:
      None.

    Examples:
      >>> import os, tempfile
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> path = os.path.join(tempfile.mkdtemp(), "xy.json")
      >>> write_json(net, path)
      >>> read_json(path).names
      ('x', 'y')
    """
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        f.write(format_json(net))


def from_pgmpy(model, *, dtype=None) -> GaussianBayesNet:
    """Convert a pgmpy ``LinearGaussianBayesianNetwork`` (with LinearGaussianCPDs) to a `GaussianBayesNet`.

    pgmpy's CPDs hold ``beta = [intercept, *coefficients]`` (in ``cpd.evidence`` order) and a standard
    deviation ``std``; the variance is ``std²``.

    Args:
      model: a pgmpy ``LinearGaussianBayesianNetwork`` with a CPD for every node.
      dtype: of the parameters (default: JAX's float).

    Returns:
      The `GaussianBayesNet`, variables in the model's node order.

    Raises:
      ValueError: a node without a CPD, or a CPD whose betas do not match its parents.

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> from_pgmpy(to_pgmpy(net)).cpd("y")                   # the round trip through pgmpy
      LinearGaussianCPD(weights={'x': 2.0}, bias=0.5, variance=0.5)
    """
    names = [str(x) for x in model.nodes()]
    parents, bias, variance, weights = {}, {}, {}, {}
    for node in model.nodes():
        cpd = model.get_cpds(node)
        if cpd is None:
            raise ValueError(f"pgmpy model has no CPD for {node!r}")
        beta = np.asarray(cpd.beta, np.float64).reshape(-1)
        pa = [str(p) for p in cpd.evidence]
        if beta.size != len(pa) + 1:
            raise ValueError(f"pgmpy CPD of {node!r} has {beta.size} betas for {len(pa)} parents (+ intercept)")
        parents[str(node)], bias[str(node)] = pa, float(beta[0])
        weights[str(node)] = dict(zip(pa, beta[1:].tolist()))
        variance[str(node)] = float(cpd.std) ** 2
    return GaussianBayesNet.from_dict(parents=parents, bias=bias, variance=variance, weights=weights,
                                      names=names, dtype=dtype)


def to_pgmpy(net: GaussianBayesNet):
    """Convert to a pgmpy ``LinearGaussianBayesianNetwork`` (needs pgmpy).

    Each node becomes a ``LinearGaussianCPD(name, [b, *w], sqrt(v), parents)``.

    Args:
      net: the `GaussianBayesNet`.

    Returns:
      A pgmpy ``LinearGaussianBayesianNetwork``.

    Raises:
      ImportError: pgmpy is not installed.

    Examples:
      >>> net = GaussianBayesNet.from_dict(parents={"y": ["x"]}, bias={"x": 1.0, "y": 0.5},
      ...     weights={"y": {"x": 2.0}}, variance={"x": 1.0, "y": 0.5})          # y = 0.5 + 2 x + N(0, 0.5)
      >>> model = to_pgmpy(net)
      >>> sorted(model.edges())
      [('x', 'y')]
    """
    try:
        from pgmpy.factors.continuous import LinearGaussianCPD
        from pgmpy.models import LinearGaussianBayesianNetwork
    except ImportError as err:
        raise ImportError("to_pgmpy needs the package 'pgmpy' (pip install 'pgmpy==1.1.0')") from err
    model = LinearGaussianBayesianNetwork()
    model.add_nodes_from(net.names)
    model.add_edges_from((net.names[p], c) for c, pa in zip(net.names, net.parents) for p in pa)
    w, b, v = (np.asarray(a, np.float64) for a in net.params)
    cpds = []
    for i, name in enumerate(net.names):
        pa = list(net.parents[i])
        cpds.append(LinearGaussianCPD(name, [float(b[i])] + [float(w[i, j]) for j in pa], float(np.sqrt(v[i])),
                                      [net.names[j] for j in pa]))
    model.add_cpds(*cpds)
    return model
