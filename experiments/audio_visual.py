"""Audio-visual streams: which dynamic Bayesian network explains two coupled streams best?

Two synthetic streams, "audio" x and "video" y, each with its own hidden dynamics (h and v, 3 states)
and a coupling: video tends to follow the previous audio state (data drawn from a coupled HMM). Five
models are fitted by EM on training sequences and compared on held-out sequences:

* a single HMM on the joint observation (x, y) with 9 states;
* two independent HMMs (x with 3 states, y with 3 states);
* a factorial HMM (two 3-state chains, one joint observation);
* a coupled HMM p(h'|h,v), p(v'|v,h), p(x|h), p(y|v);
* a Boltzmann zipper p(h'|h), p(x|h), p(v'|v,h'), p(y|v).

Reported: held-out log-likelihood per step and state accuracy (decoded (h, v) pairs mapped to the
truth by majority vote, the same many-to-one mapping for every model).

    python -m experiments.audio_visual [--quick] [--out runs/audio_visual]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from gm import learn
from gm import temporal as tm
from gm.temporal import dbn
from experiments._common import write_results

KH = KV = 3
VX = VY = 5


def truth_model(coupling: float = 0.6) -> dbn.DBN:
    """A coupled HMM: h is sticky and a little drawn by v; v moves towards the previous h."""
    eye = np.eye(KH)
    trans_h = np.zeros((KH, KV, KH))
    trans_v = np.zeros((KV, KH, KV))
    for h in range(KH):
        for v in range(KV):
            trans_h[h, v] = 0.85 * eye[h] + 0.1 * eye[v] + 0.05 / KH
            trans_v[v, h] = (1 - coupling) * (0.8 * eye[v] + 0.2 / KV) + coupling * (0.9 * eye[h] + 0.1 / KV)
    trans_h /= trans_h.sum(-1, keepdims=True)
    trans_v /= trans_v.sum(-1, keepdims=True)

    def emission(K, V):
        e = np.full((K, V), 0.4 / (V - 1))
        for k in range(K):
            e[k, k] = 0.6
        return e

    return dbn.coupled_hmm(np.ones(KH) / KH, np.ones(KV) / KV, trans_h, trans_v, emission(KH, VX), emission(KV, VY))


def _majority_accuracy(pred, true, num_pred, num_true):
    """Accuracy after mapping every predicted label to its most frequent true label."""
    pred, true = np.asarray(pred).ravel(), np.asarray(true).ravel()
    table = np.zeros((num_pred, num_true))
    np.add.at(table, (pred, true), 1)
    return float(table.max(1).sum() / len(pred))


def _fit_dbn(key, template, ev, iters, restarts):
    best, best_v, hist_best = None, -np.inf, None
    for k in jax.random.split(key, restarts):
        m = learn.dbn.init(k, template, stickiness=0.5)
        hist = []
        for _ in range(iters):
            m, v = learn.dbn.em_step(m, ev)
            hist.append(float(v))
        final = float(jnp.sum(jax.vmap(lambda e: dbn.log_evidence(m, e))(ev)))
        if final > best_v:
            best, best_v, hist_best = m, final, hist
    return best, hist_best


def _fit_hmm(key, K, V, obs, iters, restarts):
    fam = tm.Categorical(V)
    result = learn.hmm.fit_restarts(key, fam, K, obs, num_restarts=restarts, num_iters=iters, stickiness=0.5)
    hist = result.log_likelihood
    return result.model, np.asarray(hist[int(jnp.argmax(hist[:, -1])), :-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description="audio-visual DBN comparison")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/audio_visual")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    B_train, B_test, T, iters, restarts = (4, 4, 30, 8, 1) if args.quick else (40, 40, 100, 60, 3)
    os.makedirs(args.out, exist_ok=True)
    key = jax.random.key(args.seed)
    k_train, k_test, k_fit = jax.random.split(key, 3)
    truth = truth_model()
    train = jax.vmap(lambda k: dbn.sample(k, truth, T))(jax.random.split(k_train, B_train))
    test = jax.vmap(lambda k: dbn.sample(k, truth, T))(jax.random.split(k_test, B_test))
    H, V, X, Y = 0, 1, 2, 3
    true_pair = np.asarray(test[:, :, H] * KV + test[:, :, V])
    n_test_steps = B_test * T
    results, curves = {}, {}
    keys = jax.random.split(k_fit, 5)

    def record(name, heldout_ll, pair_pred, num_pred, seconds, hist):
        results[name] = {
            "heldout_loglik_per_step": float(heldout_ll) / n_test_steps,
            "state_accuracy": _majority_accuracy(pair_pred, true_pair, num_pred, KH * KV),
            "fit_seconds": seconds,
        }
        curves[name] = list(map(float, hist))

    # truth (reference)
    ev_obs = test.at[:, :, :2].set(-1)
    post = jax.vmap(lambda e: dbn.smoother(truth, e))(ev_obs)
    pred = np.asarray(jnp.argmax(post.marginals["h"], -1) * KV + jnp.argmax(post.marginals["v"], -1))
    record("true coupled HMM (reference)", jnp.sum(post.log_evidence), pred, KH * KV, 0.0, [])

    # 1. one HMM on the joint symbol
    t0 = time.perf_counter()
    joint_train = train[:, :, X] * VY + train[:, :, Y]
    joint_test = test[:, :, X] * VY + test[:, :, Y]
    p, hist = _fit_hmm(keys[0], KH * KV, VX * VY, joint_train, iters, restarts)
    fam = tm.Categorical(VX * VY)
    post = jax.vmap(lambda o: tm.smoother(p.initial, p.transition, fam.log_likelihood(p.emission, o)))(joint_test)
    record("joint HMM (9 states)", jnp.sum(post.log_evidence), jnp.argmax(post.marginals, -1), KH * KV,
           time.perf_counter() - t0, hist)

    # 2. independent HMMs
    t0 = time.perf_counter()
    px, hx = _fit_hmm(keys[1], KH, VX, train[:, :, X], iters, restarts)
    py, _ = _fit_hmm(keys[2], KV, VY, train[:, :, Y], iters, restarts)
    fx, fy = tm.Categorical(VX), tm.Categorical(VY)
    postx = jax.vmap(lambda o: tm.smoother(px.initial, px.transition, fx.log_likelihood(px.emission, o)))(test[:, :, X])
    posty = jax.vmap(lambda o: tm.smoother(py.initial, py.transition, fy.log_likelihood(py.emission, o)))(test[:, :, Y])
    pred = jnp.argmax(postx.marginals, -1) * KV + jnp.argmax(posty.marginals, -1)
    record("independent HMMs (3 + 3)", jnp.sum(postx.log_evidence) + jnp.sum(posty.log_evidence), pred,
           KH * KV, time.perf_counter() - t0, hx)

    # 3.-5. DBNs
    rng = np.random.default_rng(0)
    d = lambda *s: rng.dirichlet(np.ones(s[-1]), size=s[:-1])  # noqa: E731
    templates = {
        "factorial HMM (3 x 3)": (dbn.factorial_hmm([np.ones(KH) / KH] * 2, [d(KH, KH)] * 2, d(KH, KV, VX * VY)),
                                  "joint"),
        "coupled HMM": (dbn.coupled_hmm(np.ones(KH) / KH, np.ones(KV) / KV, d(KH, KV, KH), d(KV, KH, KV),
                                        d(KH, VX), d(KV, VY)), "pair"),
        "Boltzmann zipper": (dbn.boltzmann_zipper(np.ones(KH) / KH, d(KH, KH), d(KH, VX), d(KH, KV),
                                                  d(KV, KH, KV), d(KV, VY)), "pair"),
    }
    for i, (name, (template, obs_kind)) in enumerate(templates.items()):
        t0 = time.perf_counter()
        if obs_kind == "joint":
            mk = lambda data: jnp.stack([jnp.full(data.shape[:2], -1), jnp.full(data.shape[:2], -1),  # noqa: E731
                                         data[:, :, X] * VY + data[:, :, Y]], -1)
        else:
            mk = lambda data: data.at[:, :, :2].set(-1)  # noqa: E731
        m, hist = _fit_dbn(keys[3 + min(i, 1)], template, mk(train), iters, restarts)
        post = jax.vmap(lambda e: dbn.smoother(m, e))(mk(test))
        names = m.names
        pred = jnp.argmax(post.marginals[names[0]], -1) * KV + jnp.argmax(post.marginals[names[1]], -1)
        record(name, jnp.sum(post.log_evidence), pred, KH * KV, time.perf_counter() - t0, hist)

    rows = ["| model | held-out log-lik / step | state accuracy | fit s |", "|---|---|---|---|"]
    rows += [f"| {k} | {v['heldout_loglik_per_step']:.4f} | {v['state_accuracy']:.3f} | {v['fit_seconds']:.1f} |"
             for k, v in results.items()]
    table = "\n".join(rows)
    print(table)
    out = {"config": dict(train=B_train, test=B_test, T=T, em_iterations=iters, restarts=restarts, seed=args.seed),
           "results": results, "em_curves": curves, "table": table}
    write_results(os.path.join(args.out, "results.json"), out)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for k, c in curves.items():
            if c:
                ax.plot(np.asarray(c) / (B_train * T), label=k)
        ax.set_xlabel("EM iteration")
        ax.set_ylabel("train log-lik / step")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "em_curves.png"), dpi=110)
        plt.close(fig)
    except ImportError:  # pragma: no cover
        pass
    return out


if __name__ == "__main__":
    main()
