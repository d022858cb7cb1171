"""What the value checks of issue 18 cost: the unchecked jitted path, the compiled checks and the eager checks.

    python -m experiments.bench_validation [--repeats 15]

Two workloads: ``bn.marginals`` on alarm over B = 1000 evidence sets (``jax.vmap``) and ``tm.smoother`` on
B = 256 sequences of T = 1000 steps with K = 16 states. For each, the median wall seconds of

* ``jit``: ``jax.jit(jax.vmap(fn))``, the unchecked fast path (the default inside ``jit``);
* ``checked``: ``gm.validation.checked(jax.vmap(fn))``, the same checks compiled through ``checkify``
  (absent before the validation layer);
* ``eager_checks``: the host checks an eager call runs on the same inputs (evidence in range; initial and
  transition rows, log-likelihoods), then the ``jit`` call.

Prints one JSON object. Run it from an old checkout (``git worktree add``) to compare the ``jit`` rows
against the code before the checks: it only uses names that existed then, and skips the others.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import median_seconds


def _checked(fn):
    try:
        from gm.bn.evidence import check_evidence_values  # noqa: F401  (both exist since the validation layer)
        from gm.validation import checked
    except ImportError:
        return None
    return checked(fn)


def bench_bn(repeats: int) -> dict:
    from gm import bn
    from gm.data.networks import load_network

    net = load_network("alarm")
    k1, k2 = jax.random.split(jax.random.key(0))
    x = np.asarray(bn.sample(k1, net, 1000)) if _key_first(bn.sample) else np.asarray(bn.sample(net, k1, 1000))
    evs = jnp.asarray(np.where(np.asarray(jax.random.uniform(k2, x.shape)) < 0.2, x, -1), jnp.int32)
    batched = jax.vmap(bn.marginals, in_axes=(None, 0))
    fast = jax.jit(batched)
    out = {"jit": median_seconds(lambda: fast(net, evs), repeats)}
    safe = _checked(batched)
    if safe is not None:
        out["checked"] = median_seconds(lambda: safe(net, evs), repeats)
        from gm.bn.evidence import check_evidence_values

        def eager():
            check_evidence_values(net, np.asarray(evs))
            return fast(net, evs)

        out["eager_checks"] = median_seconds(eager, repeats)
    return out


def _key_first(fn) -> bool:
    import inspect

    return next(iter(inspect.signature(fn).parameters)) == "key"


def bench_hmm(repeats: int) -> dict:
    from gm import temporal as tm

    B, T, K = 256, 1000, 16
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    initial = jax.random.dirichlet(k1, jnp.ones(K))
    transition = jax.random.dirichlet(k2, jnp.ones(K), (K,))
    log_lik = jax.random.normal(k3, (B, T, K))
    batched = jax.vmap(tm.smoother, in_axes=(None, None, 0))
    fast = jax.jit(batched)
    out = {"jit": median_seconds(lambda: fast(initial, transition, log_lik), repeats)}
    safe = _checked(batched)
    if safe is not None:
        out["checked"] = median_seconds(lambda: safe(initial, transition, log_lik), repeats)
        from gm.temporal.common import check_log_lik, check_probabilities

        def eager():
            check_probabilities(np.asarray(initial), "initial")
            check_probabilities(np.asarray(transition), "transition")
            check_log_lik(np.asarray(log_lik))
            return fast(initial, transition, log_lik)

        out["eager_checks"] = median_seconds(eager, repeats)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    result = {"bn_marginals_alarm_B1000": bench_bn(args.repeats),
              "tm_smoother_B256_T1000_K16": bench_hmm(args.repeats)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
