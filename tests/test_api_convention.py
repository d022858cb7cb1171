"""The README's "One API convention", checked over the whole public API with ``inspect``.

Every public function of every ``gm`` module (names in ``__all__``, or public names the module defines)
and every public method of its public classes is checked for: the key first and named ``key``; a deep
model's config first or right after the key; the banned names of the same things (``ev``, ``n``,
``n_samples``, ...); options keyword-only; no fixed-size bare tuple as a return annotation. Most probable
explanations are checked by calling them: one type, ``gm.types.MPE``, from every room.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing

import numpy as np
import pytest

import gm

BANNED = {"ev", "evs", "n", "n_samples", "n_steps", "n_iters", "num_iter", "rng", "prng", "prng_key", "rng_key"}
KEYWORD_ONLY = {"mask", "weights", "soft", "prior", "method", "check", "tol", "chunk_size", "progress", "unroll"}
# (qualified name, parameter): where a listed option name is the function's data, not an option.
DATA_NOT_OPTION = {
    ("gm.parallel.mesh.unpad", "mask"),
    ("gm.temporal.length_mask", "mask"),
}


def _modules():
    seen = []
    for info in pkgutil.walk_packages(gm.__path__, "gm."):
        seen.append(importlib.import_module(info.name))
    return seen


def _public_callables():
    """(qualified name, callable) for every public function and public method of ``gm``."""
    out = {}
    for module in _modules():
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n, v in vars(module).items()
                     if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]
        for name in names:
            obj = getattr(module, name, None)
            if obj is None or inspect.ismodule(obj):
                continue
            owner = getattr(obj, "__module__", "") or ""
            if not owner.startswith("gm"):
                continue
            qual = f"{owner}.{getattr(obj, '__qualname__', name)}"
            if inspect.isfunction(obj) or hasattr(obj, "__wrapped__") and callable(obj) and not inspect.isclass(obj):
                out[qual] = obj
            elif inspect.isclass(obj) and not _exempt_class(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if inspect.isfunction(member):
                        out[f"{qual}.{attr}"] = member
    return sorted(out.items())


def _exempt_class(cls) -> bool:
    """flax modules (their ``__call__``/``setup`` follow flax) and NamedTuples (fields, not functions)."""
    mro = [f"{c.__module__}.{c.__name__}" for c in cls.__mro__]
    return any(m.startswith("flax.") for m in mro) or (issubclass(cls, tuple) and hasattr(cls, "_fields"))


CALLABLES = _public_callables()


def _signature(fn):
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _positional(sig):
    return [p for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "cls")]


def test_public_api_is_not_empty():
    assert len(CALLABLES) > 150


def _violations():
    bad = []
    for qual, fn in CALLABLES:
        sig = _signature(fn)
        if sig is None:
            continue
        params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
        names = [p.name for p in params]
        positional = [p.name for p in _positional(sig)]
        for p in params:
            if p.name in BANNED:
                bad.append(f"{qual}: parameter {p.name!r} has a banned name (README: the same names for the same things)")
        if "key" in names and (not positional or positional[0] != "key"):
            bad.append(f"{qual}: the key is not the first positional argument")
        if "config" in positional:
            i = positional.index("config")
            if not (i == 0 or (i == 1 and positional[0] == "key")):
                bad.append(f"{qual}: config is positional argument {i}, not first or right after the key")
        for p in params:
            if p.name in KEYWORD_ONLY and p.kind != p.KEYWORD_ONLY and (qual, p.name) not in DATA_NOT_OPTION:
                bad.append(f"{qual}: option {p.name!r} is not keyword-only")
        ret = sig.return_annotation
        if isinstance(ret, str):
            text = ret.replace(" ", "")
            fixed_tuple = (text.startswith(("tuple[", "Tuple[", "typing.Tuple[")) and "..." not in text)
        else:
            origin = typing.get_origin(ret)
            fixed_tuple = origin is tuple and Ellipsis not in typing.get_args(ret)
        if fixed_tuple:
            bad.append(f"{qual}: returns a bare fixed-size tuple ({ret}); return a NamedTuple")
    return bad


def test_every_public_function_follows_the_convention():
    bad = _violations()
    assert not bad, f"{len(bad)} departures from the README's API convention:\n" + "\n".join(bad)


def test_most_probable_explanations_are_one_type():
    import jax.numpy as jnp

    from gm import bn
    from gm import temporal as tm
    from gm.temporal import dbn
    from gm.types import MPE

    net = bn.BayesNet.from_dict(
        states={"A": ["a0", "a1"], "B": ["b0", "b1"]}, parents={"B": ["A"]},
        cpts={"A": [0.3, 0.7], "B": [[0.9, 0.1], [0.2, 0.8]]})
    results = {"bn.mpe": bn.mpe(net, net.evidence({"B": "b1"}))}
    initial = jnp.array([0.6, 0.4])
    transition = jnp.array([[0.9, 0.1], [0.2, 0.8]])
    log_lik = jnp.log(jnp.array([[0.5, 0.1], [0.2, 0.6], [0.7, 0.3]]))
    results["tm.viterbi"] = tm.viterbi(initial, transition, log_lik)
    results["tm.associative_viterbi"] = tm.associative_viterbi(initial, transition, log_lik)
    model = dbn.factorial_hmm([initial], [transition], jnp.array([[0.8, 0.2], [0.3, 0.7]]))
    evidence = np.full((3, len(model.structure.names)), -1, np.int32)
    evidence[:, -1] = [0, 1, 1]
    results["dbn.mpe"] = dbn.mpe(model, evidence)
    wrong = {name: type(r).__name__ for name, r in results.items() if not isinstance(r, MPE)}
    assert not wrong, f"MPE queries that do not return gm.types.MPE: {wrong}"
