"""Reading and writing networks: the BIF text format (.bif, .bif.gz) and pgmpy models."""

from __future__ import annotations

import gzip
import itertools
import os
import re

import numpy as np

from gm.bn.network import BayesNet

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_VARIABLE = re.compile(
    r"variable\s+(?P<name>[^{]+?)\s*\{\s*type\s+discrete\s*\[\s*(?P<card>\d+)\s*\]\s*"
    r"\{(?P<states>[^}]*)\}\s*;(?P<rest>[^}]*)\}",
    re.DOTALL,
)
_PROBABILITY = re.compile(r"probability\s*\(\s*(?P<head>[^)]*?)\s*\)\s*\{(?P<body>[^}]*)\}", re.DOTALL)


def _split_states(text: str) -> list[str]:
    parts = text.split(",") if "," in text else text.split()
    return [s.strip() for s in parts if s.strip()]


def _numbers(text: str, where: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in text.replace(",", " ").split()], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"BIF: bad number in {where}: {err}") from None


def parse_bif(text: str, *, atol: float = 1e-2, dtype=None) -> BayesNet:
    """Parse BIF text into a validated `BayesNet` (see `read_bif`).

    Args:
        text: the content of a BIF file: ``variable`` blocks (discrete, with state names) and
            ``probability`` blocks (a ``table`` for roots, one row per parent configuration otherwise).
        atol: tolerance on each CPT row summing to one.
        dtype: CPT dtype (default: JAX's default float).

    Returns:
        The `BayesNet`, variables in declaration order, ``cpts[i]: f32[*parent cards, card_i]``.

    Raises:
        ValueError: naming the block at fault (unknown variable, wrong number of values, bad rows).

    Examples:
        >>> net = parse_bif('''
        ... network rain { }
        ... variable Rain { type discrete [ 2 ] { no, yes }; }
        ... variable Wet { type discrete [ 2 ] { no, yes }; }
        ... probability ( Rain ) { table 0.8, 0.2; }
        ... probability ( Wet | Rain ) { (no) 0.9, 0.1; (yes) 0.2, 0.8; }
        ... ''')
        >>> net.names, net.parent_names("Wet")
        (('Rain', 'Wet'), ('Rain',))
    """
    text = _COMMENT.sub("", text)
    states: dict[str, list[str]] = {}
    for m in _VARIABLE.finditer(text):
        name = m.group("name").strip()
        if name in states:
            raise ValueError(f"BIF: variable {name!r} declared twice")
        st = _split_states(m.group("states"))
        if len(st) != int(m.group("card")):
            raise ValueError(f"BIF: variable {name!r} declares {m.group('card')} states but lists {len(st)}")
        states[name] = st
    if not states:
        if text.lstrip().startswith("{") and '"cpds"' in text:
            raise ValueError(
                "BIF: this is a linear-Gaussian (continuous) network in pgmpy's JSON format, not a discrete "
                "BIF file; load it with gm.learn.linear_gaussian.read_json(path), or by name with "
                "gm.data.load_network (ecoli70, magic-niab, magic-irri, arth150)"
            )
        raise ValueError("BIF: no discrete variable declarations found")
    lower = {n.lower(): n for n in states}

    def resolve(n: str) -> str:
        n = n.strip()
        if n in states:
            return n
        if n.lower() in lower:
            return lower[n.lower()]
        raise ValueError(f"BIF: probability block names unknown variable {n!r}")

    parents: dict[str, list[str]] = {}
    cpts: dict[str, np.ndarray] = {}
    for m in _PROBABILITY.finditer(text):
        head = m.group("head")
        if "|" in head:
            child, rest = head.split("|", 1)
            pa = [p for p in (s.strip() for s in rest.split(",")) if p]
        else:
            words = head.replace(",", " ").split()
            child, pa = words[0], words[1:]
        child = resolve(child)
        pa = [resolve(p) for p in pa]
        if child in cpts:
            raise ValueError(f"BIF: two probability blocks for {child!r}")
        card = len(states[child])
        pcards = [len(states[p]) for p in pa]
        table = np.full(tuple(pcards) + (card,), np.nan)
        for entry in m.group("body").split(";"):
            entry = entry.strip()
            if not entry:
                continue
            if entry.startswith("table"):
                values = _numbers(entry[len("table") :], f"the table of {child!r}")
                if values.size != table.size:
                    raise ValueError(
                        f"BIF: table of {child!r} has {values.size} numbers, expected {table.size}"
                    )
                # BIF tables list the child's states slowest (child-major), as pgmpy reads and writes them.
                table = np.moveaxis(values.reshape((card,) + tuple(pcards)), 0, -1).copy()
            elif entry.startswith("default"):
                values = _numbers(entry[len("default") :], f"the default row of {child!r}")
                if values.size != card:
                    raise ValueError(f"BIF: default row of {child!r} has {values.size} numbers, expected {card}")
                unset = np.isnan(table[..., 0])
                table[unset] = values
            elif entry.startswith("("):
                close = entry.index(")")
                config = [s.strip() for s in entry[1:close].split(",")]
                if len(config) != len(pa):
                    raise ValueError(f"BIF: row {entry[:close + 1]} of {child!r} names {len(config)} parent states, expected {len(pa)}")
                idx = []
                for p, s in zip(pa, config):
                    if s not in states[p]:
                        raise ValueError(f"BIF: unknown state {s!r} of parent {p!r} in the CPT of {child!r}")
                    idx.append(states[p].index(s))
                values = _numbers(entry[close + 1 :], f"a row of {child!r}")
                if values.size != card:
                    raise ValueError(f"BIF: a row of {child!r} has {values.size} numbers, expected {card}")
                table[tuple(idx)] = values
            else:
                raise ValueError(f"BIF: cannot parse entry {entry[:40]!r} in the CPT of {child!r}")
        if np.isnan(table).any():
            u = tuple(int(k) for k in np.argwhere(np.isnan(table))[0][:-1])
            config = ", ".join(f"{p}={states[p][k]}" for p, k in zip(pa, u))
            raise ValueError(f"BIF: the CPT of {child!r} has no row for ({config})")
        parents[child] = pa
        cpts[child] = table
    return BayesNet.from_dict(states=states, parents=parents, cpts=cpts, atol=atol, dtype=dtype)


def read_bif(path: str | os.PathLike, *, atol: float = 1e-2, dtype=None) -> BayesNet:
    """Read a network from a BIF file (``.bif`` or gzip-compressed ``.bif.gz``).

    Variables keep the file's declaration order. CPT values are kept as written (not renormalised);
    rows must sum to one within ``atol`` (1e-2 by default, as the bnlearn files are rounded).

    Args:
        path: a ``.bif`` or ``.bif.gz`` file.
        atol: tolerance on each CPT row summing to one.
        dtype: CPT dtype (default: JAX's default float).

    Returns:
        The `BayesNet` (see `parse_bif`).

    Examples:
        >>> from gm.data.networks import bif_path
        >>> net = read_bif(bif_path("alarm"))     # the bnlearn repository's ALARM network
        >>> net.n_vars
        37
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return parse_bif(f.read(), atol=atol, dtype=dtype)


def _format(x) -> str:
    return np.format_float_positional(x, unique=True, trim="-") if (x == 0 or abs(x) >= 1e-4) else (
        np.format_float_scientific(x, unique=True, trim="-")
    )


def format_bif(net: BayesNet, name: str = "unknown") -> str:
    """The network as BIF text (rows per parent configuration; exact round trip of CPT values).

    Args:
        net: the network; names and states must not contain spaces or BIF punctuation.
        name: the name written in the ``network`` block.

    Returns:
        The BIF text; ``parse_bif(format_bif(net))`` has the same structure and CPT values.

    Raises:
        ValueError: a variable or state name that BIF cannot hold.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> print(format_bif(net, "rain"))
        network rain {
        }
        variable Rain {
          type discrete [ 2 ] { no, yes };
        }
        variable Wet {
          type discrete [ 2 ] { no, yes };
        }
        probability ( Rain ) {
          table 0.8, 0.2;
        }
        probability ( Wet | Rain ) {
          (no) 0.9, 0.1;
          (yes) 0.2, 0.8;
        }
        <BLANKLINE>
    """
    bad = re.compile(r"[,(){};|\s]")
    for var, st in zip(net.names, net.states):
        if bad.search(var):
            raise ValueError(f"variable name {var!r} cannot be written to BIF (spaces or punctuation)")
        for s in st:
            if bad.search(s):
                raise ValueError(f"state {s!r} of variable {var!r} cannot be written to BIF")
    lines = [f"network {name} {{", "}"]
    for var, st in zip(net.names, net.states):
        lines += [f"variable {var} {{", f"  type discrete [ {len(st)} ] {{ {', '.join(st)} }};", "}"]
    for i, var in enumerate(net.names):
        cpt = np.asarray(net.cpts[i])
        pa = net.parents[i]
        if not pa:
            lines += [f"probability ( {var} ) {{", "  table " + ", ".join(_format(v) for v in cpt) + ";", "}"]
            continue
        lines.append(f"probability ( {var} | {', '.join(net.names[p] for p in pa)} ) {{")
        for u in itertools.product(*(range(net.cards[p]) for p in pa)):
            config = ", ".join(net.states[p][k] for p, k in zip(pa, u))
            lines.append(f"  ({config}) " + ", ".join(_format(v) for v in cpt[u]) + ";")
        lines.append("}")
    return "\n".join(lines) + "\n"


def write_bif(net: BayesNet, path: str | os.PathLike, name: str = "unknown") -> None:
    """Write ``net`` as BIF (gzip-compressed when ``path`` ends in .gz).

    Args:
        net: the network (see `format_bif` for the names BIF can hold).
        path: the file to write; a ``.gz`` suffix compresses it.
        name: the name written in the ``network`` block.

    Returns:
        None.

    Examples:
        >>> import os, tempfile
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> path = os.path.join(tempfile.mkdtemp(), "rain.bif.gz")
        >>> write_bif(net, path)
        >>> read_bif(path).names
        ('Rain', 'Wet')
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(format_bif(net, name))


def from_pgmpy(model, *, atol: float = 1e-2, dtype=None) -> BayesNet:
    """Convert a pgmpy ``DiscreteBayesianNetwork`` (with TabularCPDs) to a `BayesNet`.

    pgmpy stores a CPD as ``values[child state, parent configuration]``; the `BayesNet` CPT is that
    table with the child axis moved last: ``f32[*parent cards, card]``.

    Args:
        model: a pgmpy ``DiscreteBayesianNetwork`` with a TabularCPD for every node.
        atol: tolerance on each CPT row summing to one.
        dtype: CPT dtype (default: JAX's default float).

    Returns:
        The `BayesNet`, variables in the model's node order, state names as strings.

    Raises:
        ValueError: a node without a CPD, or CPDs that fail validation.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> back = from_pgmpy(to_pgmpy(net))              # the round trip through pgmpy
        >>> back.names, back.parent_names("Wet")
        (('Rain', 'Wet'), ('Rain',))
    """
    states, parents, cpts = {}, {}, {}
    for node in model.nodes():
        cpd = model.get_cpds(node)
        if cpd is None:
            raise ValueError(f"pgmpy model has no CPD for {node!r}")
        states[str(node)] = [str(s) for s in cpd.state_names[node]]
    for node in model.nodes():
        cpd = model.get_cpds(node)
        pa = [str(v) for v in cpd.variables[1:]]
        parents[str(node)] = pa
        values = np.asarray(cpd.values, dtype=np.float64)  # (card, *parent cards)
        cpts[str(node)] = np.moveaxis(values, 0, -1)
    return BayesNet.from_dict(states=states, parents=parents, cpts=cpts, atol=atol, dtype=dtype)


def to_pgmpy(net: BayesNet):
    """Convert to a pgmpy ``DiscreteBayesianNetwork`` with TabularCPDs (needs pgmpy).

    The inverse of `from_pgmpy`: each CPT ``f[*parent cards, card]`` becomes pgmpy's
    ``values[card, prod(parent cards)]``, with the state names of the child and its parents.

    Args:
        net: the network.

    Returns:
        A pgmpy ``DiscreteBayesianNetwork`` (the oracle of the test suite's comparisons).

    Raises:
        ImportError: pgmpy is not installed.

    Examples:
        >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
        ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> model = to_pgmpy(net)
        >>> print(model.get_cpds("Wet").values.round(2).tolist())
        [[0.9, 0.2], [0.1, 0.8]]
    """
    try:
        from pgmpy.factors.discrete import TabularCPD
        from pgmpy.models import DiscreteBayesianNetwork
    except ImportError as err:
        raise ImportError("to_pgmpy needs the package 'pgmpy' (pip install pgmpy)") from err
    model = DiscreteBayesianNetwork()
    model.add_nodes_from(net.names)
    model.add_edges_from((net.names[p], n) for n, pa in zip(net.names, net.parents) for p in pa)
    cpds = []
    for i, name in enumerate(net.names):
        pa = [net.names[p] for p in net.parents[i]]
        cpt = np.asarray(net.cpts[i], dtype=np.float64)
        values = np.moveaxis(cpt, -1, 0).reshape(net.cards[i], -1)
        state_names = {name: list(net.states[i])}
        state_names.update({p: list(net.states[net.index(p)]) for p in pa})
        cpds.append(
            TabularCPD(
                name,
                net.cards[i],
                values,
                evidence=pa or None,
                evidence_card=[net.cards[net.index(p)] for p in pa] or None,
                state_names=state_names,
            )
        )
    model.add_cpds(*cpds)
    return model
