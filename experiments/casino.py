"""The dishonest casino (Durbin et al., 1998): simulate, fit by EM from random starts, decode.

A casino switches between a fair die and a loaded one (a six half of the time). We simulate rolls,
fit a 2-state categorical HMM by Baum-Welch from random initialisations (``learn.hmm.fit_restarts``), decode with
the smoother and Viterbi, and plot the posterior probability of the loaded die against the truth.

    python -m experiments.casino [--quick] [--out runs/casino]

Writes ``results.json`` (true and fitted parameters, log-likelihoods, decoding accuracy) and
``posterior.png``. Expected: state accuracy around 0.8-0.9 and fitted parameters near the truth.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from gm import learn
from gm import temporal as tm
from experiments._common import write_results

FAIR, LOADED = 0, 1
TRUE_INITIAL = jnp.array([0.5, 0.5])
TRUE_TRANSITION = jnp.array([[0.95, 0.05], [0.10, 0.90]])
TRUE_EMISSION = jnp.array([[1 / 6] * 6, [0.1] * 5 + [0.5]])


def simulate(key, num_sequences: int, num_steps: int):
    """``tm.Sampled(states int32[B, T], observations int32[B, T])``: the dice and the rolls, faces 0..5
    (5 is a six)."""
    fam = tm.Categorical(6)
    params = tm.CategoricalParams(TRUE_EMISSION)
    sampler = lambda k, z: fam.sample(k, params, z)  # noqa: E731
    keys = jax.random.split(key, num_sequences)
    return jax.vmap(lambda k: tm.sample(k, TRUE_INITIAL, TRUE_TRANSITION, num_steps, sampler))(keys)


def main(argv=None):
    ap = argparse.ArgumentParser(description="dishonest casino")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/casino")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    B, T, iters, restarts = (4, 500, 100, 4) if args.quick else (20, 1000, 200, 8)
    os.makedirs(args.out, exist_ok=True)
    key = jax.random.key(args.seed)
    k_sim, k_fit = jax.random.split(key)
    states, rolls = simulate(k_sim, B, T)
    fam = tm.Categorical(6)
    t0 = time.perf_counter()
    result = learn.hmm.fit_restarts(k_fit, fam, 2, rolls, num_restarts=restarts, num_iters=iters, stickiness=0.5)
    fitted, history = jax.block_until_ready((result.model, result.log_likelihood))
    finals = history[:, -1]
    fit_s = time.perf_counter() - t0
    # label switching: the loaded state is the one that rolls more sixes
    loaded = int(jnp.argmax(fitted.emission.probs[:, 5]))
    order = jnp.array([1 - loaded, loaded])
    fitted = tm.HMM(fitted.initial[order], fitted.transition[order][:, order],
                    tm.CategoricalParams(fitted.emission.probs[order]))

    def decode(p, x):
        ll = fam.log_likelihood(p.emission, x)
        return tm.smoother(p.initial, p.transition, ll), tm.viterbi(p.initial, p.transition, ll)

    post, path = jax.vmap(lambda x: decode(fitted, x))(rolls)
    post_true, path_true = jax.vmap(lambda x: decode(tm.HMM(TRUE_INITIAL, TRUE_TRANSITION,
                                                            tm.CategoricalParams(TRUE_EMISSION)), x))(rolls)
    acc_post = float(jnp.mean((post.marginals[..., LOADED] > 0.5) == (states == LOADED)))
    acc_vit = float(jnp.mean(path.states == states))
    acc_true_params = float(jnp.mean(path_true.states == states))
    results = {
        "config": dict(num_sequences=B, num_steps=T, em_iterations=iters, restarts=restarts, seed=args.seed),
        "true": dict(transition=TRUE_TRANSITION.tolist(), emission=TRUE_EMISSION.tolist()),
        "fitted": dict(initial=fitted.initial.tolist(), transition=fitted.transition.tolist(),
                       emission=fitted.emission.probs.tolist()),
        "log_likelihood_fitted": float(jnp.sum(post.log_evidence)),
        "log_likelihood_true_params": float(jnp.sum(post_true.log_evidence)),
        "em_history_best": np.asarray(history[jnp.argmax(finals)]).tolist(),
        "restart_final_objectives": np.asarray(finals).tolist(),
        "accuracy_posterior_decoding": acc_post,
        "accuracy_viterbi": acc_vit,
        "accuracy_viterbi_true_params": acc_true_params,
        "fit_seconds_including_compile": fit_s,
    }
    write_results(os.path.join(args.out, "results.json"), results)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = min(T, 400)
        fig, ax = plt.subplots(figsize=(10, 3))
        ax.fill_between(np.arange(n), 0, np.asarray(states[0, :n] == LOADED), step="mid", color="0.85",
                        label="truth: loaded")
        ax.plot(np.asarray(post.marginals[0, :n, LOADED]), color="C3", lw=1.2, label="P(loaded | rolls), fitted")
        ax.plot(np.asarray(path.states[0, :n] == LOADED) * 1.02, color="C0", lw=0.8, ls="--", label="Viterbi")
        ax.set_xlabel("roll")
        ax.set_ylabel("P(loaded)")
        ax.set_ylim(-0.02, 1.08)
        ax.legend(loc="upper right", fontsize=8, ncol=3)
        ax.set_title(f"dishonest casino: posterior accuracy {acc_post:.3f}, Viterbi {acc_vit:.3f}")
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "posterior.png"), dpi=120)
        plt.close(fig)
    except ImportError:  # pragma: no cover
        pass
    print(json.dumps({k: results[k] for k in ("fitted", "accuracy_posterior_decoding", "accuracy_viterbi",
                                              "accuracy_viterbi_true_params", "log_likelihood_fitted",
                                              "log_likelihood_true_params")}, indent=1))
    return results


if __name__ == "__main__":
    main()
