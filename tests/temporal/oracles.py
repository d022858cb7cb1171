"""Float64 brute-force oracles: enumerate all K^T state paths of a small HMM."""

import itertools

import numpy as np


def enumerate_paths(initial, transition, log_lik, mask=None):
    """Returns (paths int[K^T', T'], log joint f64[K^T']) over the valid steps only.

    Masked steps are deleted from the chain (the semantics of gm.temporal's mask).
    """
    initial = np.asarray(initial, np.float64)
    transition = np.asarray(transition, np.float64)
    log_lik = np.asarray(log_lik, np.float64)
    T, K = log_lik.shape
    valid = np.ones(T, bool) if mask is None else np.asarray(mask, bool)
    steps = np.flatnonzero(valid)
    paths = np.array(list(itertools.product(range(K), repeat=len(steps))), dtype=int)
    paths = paths.reshape(len(paths), len(steps))
    logp = np.zeros(len(paths))
    if len(steps) == 0:
        return paths, logp, steps
    with np.errstate(divide="ignore"):
        logp += np.log(initial)[paths[:, 0]]
        for n, t in enumerate(steps):
            logp += log_lik[t, paths[:, n]]
            if n > 0:
                # the transition into step t: masked steps between are identity (deleted)
                A = transition if transition.ndim == 2 else transition[t - 1]
                logp += np.log(A[paths[:, n - 1], paths[:, n]])
    return paths, logp, steps


def logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def brute_force(initial, transition, log_lik, mask=None):
    """dict with log_evidence, marginals [T, K], filtered [T, K], two_slice [T-1, K, K], best path."""
    T, K = np.shape(log_lik)
    paths, logp, steps = enumerate_paths(initial, transition, log_lik, mask)
    log_z = logsumexp(logp)
    post = np.exp(logp - log_z)
    marg = np.zeros((T, K))
    for n, t in enumerate(steps):
        np.add.at(marg[t], paths[:, n], post)
    two = np.zeros((max(T - 1, 0), K, K))
    for n in range(len(steps) - 1):
        # a pair of consecutive valid steps (masked steps between are deleted) is counted at the
        # index of the transition into the later step
        t1 = steps[n + 1]
        np.add.at(two[t1 - 1], (paths[:, n], paths[:, n + 1]), post)
    filtered = np.zeros((T, K))
    for n, t in enumerate(steps):
        sub_paths, sub_logp, sub_steps = enumerate_paths(
            initial, transition, log_lik, _prefix_mask(T, steps[: n + 1]))
        w = np.exp(sub_logp - logsumexp(sub_logp))
        np.add.at(filtered[t], sub_paths[:, -1], w)
    best = np.argmax(logp)
    path = -np.ones(T, int)
    path[steps] = paths[best]
    return dict(log_evidence=log_z, marginals=marg, two_slice=two, filtered=filtered, path=path,
                path_log_prob=logp[best], sorted_logp=np.sort(logp)[::-1], posterior=post, paths=paths, steps=steps)


def _prefix_mask(T, steps):
    m = np.zeros(T, bool)
    m[steps] = True
    return m


def random_hmm(rng, K, T, time_varying=False, sharp=1.0):
    initial = rng.dirichlet(np.ones(K))
    shape = (T - 1, K, K) if time_varying else (K, K)
    transition = rng.dirichlet(np.ones(K) * sharp, size=shape[:-1])
    log_lik = rng.normal(size=(T, K)) * 2.0
    return initial.astype(np.float32), transition.astype(np.float32), log_lik.astype(np.float32)


def float64_log_evidence(pi, A, ll):
    """log p(x) by a scaled forward pass in float64, for sequences too long to enumerate (the reference
    of experiments/bench_hmm.py's accuracy column, computed the same way)."""
    alpha = np.asarray(pi, np.float64)
    A = np.asarray(A, np.float64)
    ll = np.asarray(ll, np.float64)
    shift = ll.max(1)
    lik = np.exp(ll - shift[:, None])
    total = 0.0
    for t in range(len(ll)):
        if t:
            alpha = alpha @ A
        alpha = alpha * lik[t]
        c = alpha.sum()
        alpha /= c
        total += np.log(c)
    return total + shift.sum()
