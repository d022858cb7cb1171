"""Benchmark: gm.temporal against hmmlearn (scaling and log implementations) and dynamax, same run.

Smoothing (marginals + log-evidence), Viterbi and one EM iteration for B sequences of length T with
categorical emissions, K in {4, 16, 64}; smoothing twice for gm: ``tm.smoother`` on log-likelihoods
(what dynamax's ``hmm_smoother`` takes) and ``tm.posterior`` on the observations (each step's
likelihood computed inside the loop; what hmmlearn's ``score_samples`` takes). One sequence of
T = 100,000 (time and float32 accuracy of the log-evidence against a float64 forward pass); a factorial HMM (M = 3 chains, K = 6) structured
against the flattened 216-state HMM, and a row per (M, K) showing how each side scales. Medians over
repeats of wall and CPU seconds; compile time (first call minus median) reported separately. JAX
functions are jitted and vmapped over sequences (the structured factorial smoother takes the batch
directly); hmmlearn gets the concatenated sequences with ``lengths``. With ``--cpu-devices N`` the host's
CPU is split into N JAX devices and the factorial section adds both sides sharded over them
(``gm.parallel.sharded_map``); ``--only factorial`` runs that section alone.

    python -m experiments.bench_hmm [--quick] [--out runs/bench_hmm] [--cpu-devices 2] [--only factorial]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from gm import learn, parallel
from gm import temporal as tm
from experiments._common import write_results


def _timeit(fn, repeats):
    """(median wall s, compile s (first call minus median), median CPU s of this process).

    CPU seconds (``time.process_time``, all threads) are the fairer A/B measure on a shared machine."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = float(np.median(times))
    return med, max(first - med, 0.0), float(np.median(cpu))


def _timed(res):
    return {k: {"median_s": v[0], "compile_s": v[1], "cpu_s": v[2]} for k, v in res.items()}


def _model(rng, K, V):
    pi = rng.dirichlet(np.ones(K))
    A = 0.5 * np.eye(K) + 0.5 * rng.dirichlet(np.ones(K), size=K)
    B = rng.dirichlet(np.ones(V) * 0.5, size=K)
    return pi, A, B


def _sample(rng, pi, A, B, n, T):
    K, V = B.shape
    z = np.zeros((n, T), int)
    z[:, 0] = rng.choice(K, size=n, p=pi)
    cumA = np.cumsum(A, 1)
    u = rng.random((n, T))
    for t in range(1, T):
        z[:, t] = np.minimum((u[:, t, None] > cumA[z[:, t - 1]]).sum(1), K - 1)
    cumB = np.cumsum(B, 1)
    x = np.minimum((rng.random((n, T))[..., None] > cumB[z]).sum(-1), V - 1)
    return z, x.astype(np.int32)


def _categorical_problem(rng, K, V, B, T):
    """A random K-state HMM with V symbols and B sampled sequences of length T: float64 (pi, A, B) and
    int x [B, T], then gm's family, its float32 ``tm.HMM`` and x as a JAX array."""
    pi, A, Bm = _model(rng, K, V)
    _, x = _sample(rng, pi, A, Bm, B, T)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    params = tm.HMM(f32(pi), f32(A), tm.CategoricalParams(f32(Bm)))
    return pi, A, Bm, x, tm.Categorical(V), params, jnp.asarray(x)


def bench_batch(K, B, T, V, repeats, hmmlearn_repeats, with_log_impl=True):
    from dynamax.hidden_markov_model import CategoricalHMM, hmm_posterior_mode, hmm_smoother
    from hmmlearn import hmm as hl

    rng = np.random.default_rng(K)
    pi, A, Bm, x, fam, params, xj = _categorical_problem(rng, K, V, B, T)
    res = {}

    ours_smooth = jax.jit(jax.vmap(lambda o: tuple(tm.smoother(
        params.initial, params.transition, fam.log_likelihood(params.emission, o)))))
    ours_vit = jax.jit(jax.vmap(lambda o: tuple(tm.viterbi(
        params.initial, params.transition, fam.log_likelihood(params.emission, o)))))
    # the same smoothing from the observations, each step's likelihood computed inside the loops
    ours_post = jax.jit(jax.vmap(lambda o: tuple(tm.posterior(fam, params, o))))
    res["gm smoother"] = _timeit(lambda: ours_smooth(xj), repeats)
    res["gm posterior"] = _timeit(lambda: ours_post(xj), repeats)
    res["gm viterbi"] = _timeit(lambda: ours_vit(xj), repeats)
    res["gm em step"] = _timeit(lambda: learn.hmm.em_step(fam, params, xj), repeats)

    dyn_ll = lambda o: jnp.log(params.emission.probs.T[o])  # noqa: E731
    dyn_smooth = jax.jit(jax.vmap(lambda o: (lambda p: (p.marginal_loglik, p.smoothed_probs))(
        hmm_smoother(params.initial, params.transition, dyn_ll(o)))))
    dyn_vit = jax.jit(jax.vmap(lambda o: hmm_posterior_mode(params.initial, params.transition, dyn_ll(o))))
    res["dynamax smoother"] = _timeit(lambda: dyn_smooth(xj), repeats)
    res["dynamax viterbi"] = _timeit(lambda: dyn_vit(xj), repeats)
    dhmm = CategoricalHMM(K, 1, V, initial_probs_concentration=1.0, transition_matrix_concentration=1.0,
                          emission_prior_concentration=1.0)
    dparams, dprops = dhmm.initialize(jax.random.key(0))
    dparams = dparams._replace(
        initial=dparams.initial._replace(probs=params.initial),
        transitions=dparams.transitions._replace(transition_matrix=params.transition),
        emissions=dparams.emissions._replace(probs=params.emission.probs[:, None, :]))
    demis = xj[..., None]

    @jax.jit
    def dyn_em(p):  # dynamax's own E-step and M-step, jitted once (its fit_em re-jits per call)
        stats, lls = jax.vmap(lambda e: dhmm.e_step(p, e))(demis)
        newp, _ = dhmm.m_step(p, dprops, stats, dhmm.initialize_m_step_state(p, dprops))
        return newp, lls.sum()

    res["dynamax em step"] = _timeit(lambda: dyn_em(dparams), repeats)

    # correctness across libraries on this batch
    a = ours_smooth(xj)
    d = dyn_smooth(xj)
    p = ours_post(xj)
    agree = {"max |marginals gm - dynamax|": float(jnp.max(jnp.abs(a[1] - d[1]))),
             "max |marginals gm posterior - dynamax|": float(jnp.max(jnp.abs(p[1] - d[1]))),
             "max |log-ev gm posterior - dynamax| (rel)": float(jnp.max(jnp.abs(p[0] - d[0]) / jnp.abs(d[0]))),
             "max |log-ev gm - dynamax| (rel)": float(jnp.max(jnp.abs(a[0] - d[0]) / jnp.abs(d[0])))}

    X = x.reshape(-1, 1)
    lengths = [T] * B
    impls = ["scaling", "log"] if with_log_impl else ["scaling"]
    for impl in impls:
        m = hl.CategoricalHMM(K, n_features=V, implementation=impl, init_params="", params="ste", n_iter=1)
        m.startprob_, m.transmat_, m.emissionprob_ = pi, A, Bm

        def smooth():
            return m.score_samples(X, lengths)

        res[f"hmmlearn-{impl} smoother"] = _timeit(smooth, hmmlearn_repeats)
        res[f"hmmlearn-{impl} viterbi"] = _timeit(lambda: m.decode(X, lengths), hmmlearn_repeats)

        def em():
            mm = hl.CategoricalHMM(K, n_features=V, implementation=impl, init_params="", params="ste", n_iter=1)
            mm.startprob_, mm.transmat_, mm.emissionprob_ = pi, A, Bm
            return mm.fit(X, lengths)

        res[f"hmmlearn-{impl} em step"] = _timeit(em, hmmlearn_repeats)
        if impl == "scaling":
            ll_ref, post_ref = m.score_samples(X, lengths)
            agree["max |marginals gm - hmmlearn|"] = float(np.max(np.abs(np.asarray(a[1]).reshape(-1, K) - post_ref)))
            agree["|sum log-ev gm - hmmlearn| (rel)"] = float(abs(float(jnp.sum(a[0])) - ll_ref) / abs(ll_ref))
    return _timed(res), agree


def _float64_log_evidence(pi, A, ll):
    alpha = pi.astype(np.float64)
    A = A.astype(np.float64)
    ll = ll.astype(np.float64)
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


def bench_long(T, K, repeats):
    from dynamax.hidden_markov_model import hmm_smoother
    from hmmlearn import hmm as hl

    rng = np.random.default_rng(100)
    V = 8
    pi, A, Bm = _model(rng, K, V)
    _, x = _sample(rng, pi, A, Bm, 1, T)
    x = x[0]
    ll = np.log(Bm.T[x]).astype(np.float32)
    pi32, A32 = jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32)
    exact = _float64_log_evidence(np.asarray(pi32), np.asarray(A32), ll)
    sm = jax.jit(lambda l: tuple(tm.smoother(pi32, A32, l)))
    dy = jax.jit(lambda l: (lambda p: (p.marginal_loglik, p.smoothed_probs))(hmm_smoother(pi32, A32, l)))
    # (the parallel-in-time smoother costs O(T K^3) work: meant for accelerators, not timed here)
    out = {"gm smoother": _timeit(lambda: sm(ll), repeats),
           "dynamax smoother": _timeit(lambda: dy(ll), repeats)}
    m = hl.CategoricalHMM(K, n_features=V, implementation="scaling", init_params="")
    m.startprob_, m.transmat_, m.emissionprob_ = pi32.astype(np.float64), np.asarray(A32, np.float64), Bm
    out["hmmlearn-scaling smoother"] = _timeit(lambda: m.score_samples(x[:, None]), 1)
    err = {"gm": abs(float(sm(ll)[0]) - exact), "dynamax": abs(float(dy(ll)[0]) - exact),
           "float64 log-evidence": exact}
    return _timed(out), err


def bench_factorial(M, K, V, B, T, repeats, engine=True):
    """Factorial HMM (M chains of K states): structured smoothing (``dbn.smoother`` on the batch, the
    factorial fast path) against gm's HMM smoother on the flattened K^M-state chain (vmapped), same
    sequences; with ``engine`` also the general 2-TBN contraction engine (vmapped) on both models."""
    from gm.temporal import dbn

    rng = np.random.default_rng(7)
    inits = [rng.dirichlet(np.ones(K)) for _ in range(M)]
    trans = [0.7 * np.eye(K) + 0.3 * rng.dirichlet(np.ones(K), size=K) for _ in range(M)]
    emission = rng.dirichlet(np.ones(V), size=(K,) * M)
    model = dbn.factorial_hmm(inits, trans, emission)
    ev = jax.vmap(lambda k: dbn.sample(k, model, T))(jax.random.split(jax.random.key(0), B))
    ev = ev.at[:, :, :M].set(-1)  # only x observed
    x = ev[:, :, M]
    pi = jnp.asarray(_kron_all(inits), jnp.float32)
    A = jnp.asarray(_kron_all(trans), jnp.float32)
    log_em = jnp.asarray(np.log(emission.reshape(K**M, V)), jnp.float32)
    names = [f"h{m + 1}" for m in range(M)]

    def chain_marginals(joint):
        m = joint.reshape((T,) + (K,) * M)
        axes = tuple(range(1, M + 1))
        return tuple(m.sum(axis=tuple(a for a in axes if a != m_ + 1)) for m_ in range(M))

    def flat_fn(xs):
        post = tm.smoother(pi, A, log_em.T[xs])
        return post.log_evidence, chain_marginals(post.marginals)

    flat_params = tm.HMM(pi, A, tm.CategoricalParams(jnp.exp(log_em)))

    def flat_post_fn(xs):  # the flattened chain from the observations (no [T, K^M] log-likelihoods)
        post = tm.posterior(tm.Categorical(V), flat_params, xs)
        return post.log_evidence, chain_marginals(post.marginals)

    structured = jax.jit(lambda e: (lambda p: (p.log_evidence, tuple(p.marginals[n] for n in names)))(
        dbn.smoother(model, e)))
    flat = jax.jit(jax.vmap(flat_fn))
    flat_post = jax.jit(jax.vmap(flat_post_fn))
    res = {"structured smoother (dbn.smoother on the batch)": _timeit(lambda: structured(ev), repeats),
           "flattened smoother (tm.smoother, vmapped)": _timeit(lambda: flat(x), repeats),
           "flattened posterior (tm.posterior, vmapped)": _timeit(lambda: flat_post(x), repeats)}
    if jax.device_count() > 1:
        # both sides with the batch split over every device (gm.parallel.sharded_map: shard_map, each
        # device runs the one-device program on its rows); on a CPU host see --cpu-devices
        mesh = parallel.batch_mesh()
        n = mesh.size

        def struct_one(m, e):
            p = dbn.smoother(m, e)
            return p.log_evidence, tuple(p.marginals[n_] for n_ in names)

        struct_sh = parallel.sharded_map(struct_one, mesh, in_axes=(None, 0))
        flat_sh = parallel.sharded_map(flat_fn, mesh)
        res[f"structured smoother, sharded over {n} devices"] = _timeit(lambda: struct_sh(model, ev), repeats)
        res[f"flattened smoother (tm.smoother), sharded over {n} devices"] = _timeit(lambda: flat_sh(x), repeats)
        flat_post_sh = parallel.sharded_map(flat_post_fn, mesh)
        res[f"flattened posterior (tm.posterior), sharded over {n} devices"] = _timeit(lambda: flat_post_sh(x), repeats)
    if engine:
        # the general 2-TBN contraction engine (what dbn.smoother runs for other structures), vmapped,
        # on the factorial model and on the flattened HMM written as a one-chain DBN
        hmm_dbn = dbn.from_dict({"z": K**M, "x": V}, initial_parents={"x": ["z"]},
                                transition_parents={"z": ["z[-1]"], "x": ["z"]},
                                initial_cpts={"z": pi, "x": jnp.exp(log_em)},
                                transition_cpts={"z": A, "x": jnp.exp(log_em)})
        ev_flat = jnp.stack([jnp.full_like(x, -1), x], axis=-1)
        engine_struct = jax.jit(jax.vmap(lambda e: (lambda p: (p.log_evidence, tuple(p.marginals[n] for n in names)))(
            dbn.smoother(model, e, method="general"))))
        engine_flat = jax.jit(jax.vmap(lambda e: (lambda p: (p.log_evidence, chain_marginals(p.marginals["z"])))(
            dbn.smoother(hmm_dbn, e, method="general"))))
        res["structured smoother (general 2-TBN engine, vmapped)"] = _timeit(lambda: engine_struct(ev), repeats)
        res["flattened smoother (general 2-TBN engine, vmapped)"] = _timeit(lambda: engine_flat(ev_flat), repeats)
    a, b = structured(ev), flat(x)
    diff = {"max |log-ev| rel": float(jnp.max(jnp.abs(a[0] - b[0]) / jnp.abs(b[0]))),
            "max |marginals|": max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a[1], b[1])),
            "structured step multiply-adds": M * K ** (M + 1), "flattened step multiply-adds": K ** (2 * M)}
    return _timed(res), diff


def bench_factorial_scaling(points, B, T, repeats):
    """Rows (M, K): structured vs flattened smoothing CPU seconds, to show O(T M K^(M+1)) against
    O(T K^(2M))."""
    rows = []
    for M, K in points:
        r, d = bench_factorial(M=M, K=K, V=8, B=B, T=T, repeats=repeats, engine=False)
        s = r["structured smoother (dbn.smoother on the batch)"]
        f = r["flattened smoother (tm.smoother, vmapped)"]
        rows.append(dict(M=M, K=K, states=K**M, structured_cpu_s=s["cpu_s"], flattened_cpu_s=f["cpu_s"],
                         structured_s=s["median_s"], flattened_s=f["median_s"],
                         structured_madds=M * K ** (M + 1), flattened_madds=K ** (2 * M),
                         max_abs_marginal_diff=d["max |marginals|"]))
    return rows


# --------------------------------------------------------------------------------------------- the grid

GRID_TASKS = ("filter", "smoother", "posterior", "viterbi", "sample", "em step")


def _grid_cell_fns(K, B, T, V, rng):
    """Every side's callables for one (K, B, T) cell on one batch of categorical sequences, plus the
    outputs to compare: {(task, side): fn}, and the hmmlearn model and data."""
    from dynamax.hidden_markov_model import (CategoricalHMM, hmm_filter, hmm_posterior_mode,
                                             hmm_posterior_sample, hmm_smoother)
    from hmmlearn import hmm as hl

    pi, A, Bm, x, fam, params, xj = _categorical_problem(rng, K, V, B, T)
    keys = jax.random.split(jax.random.key(1), B)
    ll = lambda o: fam.log_likelihood(params.emission, o)  # noqa: E731
    i0, A0 = params.initial, params.transition
    batch = lambda f: jax.jit(jax.vmap(f))  # noqa: E731
    fns = {
        ("filter", "gm"): batch(lambda o: tuple(tm.filter(i0, A0, ll(o)))[:2]),
        ("filter", "gm associative"): batch(lambda o: tuple(tm.associative_filter(i0, A0, ll(o)))[:2]),
        ("filter", "dynamax"): batch(lambda o: (lambda p: (p.marginal_loglik, p.filtered_probs))(
            hmm_filter(i0, A0, ll(o)))),
        ("smoother", "gm"): batch(lambda o: tuple(tm.smoother(i0, A0, ll(o)))),
        ("smoother", "gm associative"): batch(lambda o: tuple(tm.associative_smoother(i0, A0, ll(o)))),
        ("smoother", "dynamax"): batch(lambda o: (lambda p: (p.marginal_loglik, p.smoothed_probs))(
            hmm_smoother(i0, A0, ll(o)))),
        ("posterior", "gm"): batch(lambda o: tuple(tm.posterior(fam, params, o))),
        ("viterbi", "gm"): batch(lambda o: tm.viterbi(i0, A0, ll(o)).states),
        ("viterbi", "gm associative"): batch(lambda o: tm.associative_viterbi(i0, A0, ll(o)).states),
        ("viterbi", "dynamax"): batch(lambda o: hmm_posterior_mode(i0, A0, ll(o))),
        ("sample", "gm"): jax.jit(jax.vmap(lambda k, o: tm.sample_posterior(k, i0, A0, ll(o)))),
        ("sample", "dynamax"): jax.jit(jax.vmap(lambda k, o: hmm_posterior_sample(k, i0, A0, ll(o))[1])),
        ("em step", "gm"): jax.jit(lambda o: learn.hmm.em_step(fam, params, o)),
    }
    dhmm = CategoricalHMM(K, 1, V, initial_probs_concentration=1.0, transition_matrix_concentration=1.0,
                          emission_prior_concentration=1.0)
    dparams, dprops = dhmm.initialize(jax.random.key(0))
    dparams = dparams._replace(
        initial=dparams.initial._replace(probs=i0),
        transitions=dparams.transitions._replace(transition_matrix=A0),
        emissions=dparams.emissions._replace(probs=params.emission.probs[:, None, :]))

    @jax.jit
    def dyn_em(e):
        stats, lls = jax.vmap(lambda s: dhmm.e_step(dparams, s))(e)
        newp, _ = dhmm.m_step(dparams, dprops, stats, dhmm.initialize_m_step_state(dparams, dprops))
        return newp, lls.sum()

    fns[("em step", "dynamax")] = dyn_em
    args = {"sample": (keys, xj), "em step dynamax": (xj[..., None],)}
    X, lengths = x.reshape(-1, 1), [T] * B

    def hl_model():
        m = hl.CategoricalHMM(K, n_features=V, implementation="scaling", init_params="", params="ste", n_iter=1)
        m.startprob_, m.transmat_, m.emissionprob_ = pi, A, Bm
        return m

    m = hl_model()
    fns[("filter", "hmmlearn")] = lambda: m.score(X, lengths)
    fns[("smoother", "hmmlearn")] = lambda: m.score_samples(X, lengths)
    fns[("viterbi", "hmmlearn")] = lambda: m.decode(X, lengths)
    fns[("em step", "hmmlearn")] = lambda: hl_model().fit(X, lengths)

    def call(task, side):
        f = fns[(task, side)]
        if side == "hmmlearn":
            return f
        a = args.get(f"{task} {side}", args.get(task, (xj,)))
        return lambda: f(*a)

    return fns, call, m, X, lengths


def _grid_agreement(call, m, X, lengths, K, associative=True):
    """Max |difference| of filtered / smoothed marginals between the sides (and the Viterbi paths' share
    of disagreeing steps, and of the EM step's new transition matrices), on this cell's batch; the
    associative smoother's only with ``associative``."""
    out = {}
    d_f, d_s = call("filter", "dynamax")(), call("smoother", "dynamax")()
    g_f, g_s, g_p = call("filter", "gm")(), call("smoother", "gm")(), call("posterior", "gm")()
    _, hl_post = m.score_samples(X, lengths)
    hl_post = hl_post.reshape(np.asarray(d_s[1]).shape)
    out["filter gm - dynamax"] = float(jnp.max(jnp.abs(g_f[1] - d_f[1])))
    out["smoother gm - dynamax"] = float(jnp.max(jnp.abs(g_s[1] - d_s[1])))
    out["posterior gm - dynamax"] = float(jnp.max(jnp.abs(g_p[1] - d_s[1])))
    out["smoother gm - hmmlearn"] = float(np.max(np.abs(np.asarray(g_s[1], np.float64) - hl_post)))
    out["posterior gm - hmmlearn"] = float(np.max(np.abs(np.asarray(g_p[1], np.float64) - hl_post)))
    out["log-evidence gm - hmmlearn (rel)"] = float(abs(float(np.sum(np.asarray(g_s[0], np.float64)))
                                                        - m.score(X, lengths)) / abs(m.score(X, lengths)))
    if associative:
        a_s = call("smoother", "gm associative")()
        out["associative smoother gm - dynamax"] = float(jnp.max(jnp.abs(a_s[1] - d_s[1])))
    g_em, d_em = call("em step", "gm")(), call("em step", "dynamax")()
    out["em step transition gm - dynamax"] = float(jnp.max(jnp.abs(
        g_em.model.transition - d_em[0].transitions.transition_matrix)))
    _, hl_path = m.decode(X, lengths)
    out["viterbi gm != hmmlearn (share of steps)"] = float(np.mean(
        np.asarray(call("viterbi", "gm")()).reshape(-1) != hl_path))
    return out


def bench_grid(Ks, Bs, Ts, *, V=8, repeats=5, max_call_s=60.0, budget_s=None, long_cell=None, out=None,
               sides=("gm", "gm associative", "dynamax", "hmmlearn"), tasks=GRID_TASKS, max_assoc_bytes=2**28):
    """Every task on every (K, B, T) cell, cheapest cells first (B T K^2), gm against dynamax and
    hmmlearn (scaling) in the same run: median wall and CPU s over ``repeats`` (two repeats for a call over
    a second), compile apart. A side is dropped from a cell (named in ``dropped``) where one call is
    predicted, from the same side's largest measured cell of the same K and task scaled by B T (or of the
    largest smaller K, scaled by K^2 too), to take over ``max_call_s`` (and the associative passes where
    their [B, T, K, K] matrices exceed ``max_assoc_bytes``); cells after ``budget_s`` seconds are not run
    (``not_run``). ``tasks`` and ``sides`` select what is timed (the agreement check always runs, the
    associative smoother's part within ``max_assoc_bytes``). Results are written after every cell when
    ``out`` is given."""
    start = time.perf_counter()
    cells = sorted(((K, B, T) for K in Ks for B in Bs for T in Ts), key=lambda c: (c[1] * c[2] * c[0] ** 2, c))
    res = {"cells": {}, "dropped": [], "not_run": [], "config": dict(Ks=Ks, Bs=Bs, Ts=Ts, V=V, repeats=repeats,
                                                                     max_call_s=max_call_s)}
    measured = {}  # (K, task, side) -> (B T, seconds per call) of the largest cell run

    for K, B, T in cells:
        if budget_s is not None and time.perf_counter() - start > budget_s:
            res["not_run"].append([K, B, T])
            continue
        print(f"grid K={K} B={B} T={T} (load {os.getloadavg()[0]:.1f}) ...", flush=True)
        fns, call, m, X, lengths = _grid_cell_fns(K, B, T, V, np.random.default_rng(K * 1000 + B + T))
        cell = {"load_average": os.getloadavg(), "timings": {}}
        # the associative passes' [B, T, K, K] products, timed and in the agreement check alike (the check's
        # smoother alone was 4.2 GB a product where the thirteenth session's grid died, 58 GB at K = 64,
        # B = 64, T = 10^4)
        assoc_fits = 4 * B * T * K * K <= max_assoc_bytes
        for task in tasks:
            for side in sides:
                if (task, side) not in fns:
                    continue
                if side == "gm associative" and not assoc_fits:
                    res["dropped"].append(dict(K=K, B=B, T=T, task=task, side=side, predicted_s=float("nan"),
                                               bytes=4 * B * T * K * K))
                    continue
                prev = measured.get((K, task, side))
                if prev is None:  # the largest smaller K of the same task and side, scaled by K^2 too
                    smaller = [(k, v) for (k, t_, s_), v in measured.items() if t_ == task and s_ == side and k < K]
                    if smaller:
                        k, (bt, sec) = max(smaller)
                        prev = (bt, sec * (K / k) ** 2)
                if prev is not None and prev[1] * B * T / prev[0] > max_call_s:
                    res["dropped"].append(dict(K=K, B=B, T=T, task=task, side=side,
                                               predicted_s=prev[1] * B * T / prev[0]))
                    continue
                fn = call(task, side)
                if prev is not None and prev[1] * B * T / prev[0] > 1.0:
                    med, comp, cpu = _timeit(fn, 1)
                else:  # fast calls repeated for about 0.3 s (at least ``repeats``, at most 300), one compile
                    first = time.perf_counter()
                    jax.block_until_ready(fn())
                    first = time.perf_counter() - first
                    t0 = time.perf_counter()
                    jax.block_until_ready(fn())
                    once = time.perf_counter() - t0
                    # a call over a second is timed twice more, not ``repeats`` times
                    reps = 2 if once > 1.0 else int(min(300, max(repeats, 0.3 / max(once, 1e-6))))
                    med, _, cpu = _timeit(fn, reps)
                    comp = max(first - med, 0.0)
                cell["timings"][f"{task} | {side}"] = {"median_s": med, "compile_s": comp, "cpu_s": cpu}
                measured[(K, task, side)] = (B * T, med)
        cell["agreement"] = _grid_agreement(call, m, X, lengths, K,
                                            associative="gm associative" in sides and assoc_fits)
        res["cells"][f"K={K} B={B} T={T}"] = cell
        if out is not None:
            write_results(os.path.join(out, "results.json"), res)
    if long_cell is not None:
        print(f"grid long sequence T={long_cell['T']} K={long_cell['K']} ...", flush=True)
        res["long"], res["long_abs_error_nats"] = bench_long(long_cell["T"], long_cell["K"], long_cell.get("repeats", 3))
    res["seconds"] = time.perf_counter() - start
    return res


def grid_table(res):
    """Markdown: one row per (cell, task): seconds per side and gm's speed-up (wall) over each."""
    rows = []
    for name, cell in res["cells"].items():
        t = cell["timings"]
        for task in GRID_TASKS:
            g = t.get(f"{task} | gm")
            if g is None:
                continue

            def col(side):
                v = t.get(f"{task if task != 'posterior' or side == 'gm' else 'smoother'} | {side}")
                return v

            cols, speed = [], []
            for side in ("gm associative", "dynamax", "hmmlearn"):
                v = col(side)
                cols.append("-" if v is None else f"{v['median_s']:.4g}")
                speed.append("-" if v is None else f"{v['median_s'] / g['median_s']:.2f}x")
            d = col("dynamax")
            cpu = "-" if d is None else f"{d['cpu_s'] / max(g['cpu_s'], 1e-9):.2f}x"
            rows.append([name, task, f"{g['median_s']:.4g}"] + cols + speed + [cpu, f"{g['compile_s']:.2f}"])
    return _table(rows, ["cell", "task", "gm s", "gm associative s", "dynamax s", "hmmlearn s",
                         "vs gm associative", "vs dynamax (wall)", "vs hmmlearn (wall)", "vs dynamax (CPU)",
                         "gm compile s"])


def grid_heatmap(res, path):
    """PNG: log2 of dynamax's time over gm's (wall) per cell (columns) and task (rows); > 0 where gm wins."""
    from experiments._common import pyplot, save_figure

    names = list(res["cells"])
    ratio = np.full((len(GRID_TASKS), len(names)), np.nan)
    for j, name in enumerate(names):
        t = res["cells"][name]["timings"]
        for i, task in enumerate(GRID_TASKS):
            g, d = t.get(f"{task} | gm"), t.get(f"{'smoother' if task == 'posterior' else task} | dynamax")
            if g and d:
                ratio[i, j] = np.log2(d["median_s"] / g["median_s"])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 3.6))
    lim = max(1.0, float(np.nanmax(np.abs(ratio))) if np.isfinite(ratio).any() else 1.0)
    im = ax.imshow(ratio, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), v in np.ndenumerate(ratio):
        if np.isfinite(v):
            ax.text(j, i, f"{2 ** v:.1f}", ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(GRID_TASKS)), GRID_TASKS, fontsize=7)
    fig.colorbar(im, ax=ax, label="log2(dynamax s / gm s)")
    ax.set_title("gm speed-up over dynamax (wall), per cell")
    save_figure(fig, path)


def main_grid(args):
    """``--grid``: the cells, the long sequence, a markdown table, the heat map and results.json."""
    os.makedirs(args.out, exist_ok=True)
    if args.quick:  # one small cell of every task and side, and a short long sequence
        kw = dict(Ks=[3], Bs=[2], Ts=[30], repeats=1, long_cell=dict(T=500, K=4, repeats=1))
    else:
        kw = dict(Ks=args.Ks, Bs=args.Bs, Ts=args.Ts, long_cell=dict(T=args.long_T, K=16) if args.long_T else None)
    res = bench_grid(**kw, max_call_s=args.max_call_s, budget_s=args.budget_s, out=args.out,
                     tasks=tuple(args.tasks), sides=tuple(args.sides))
    res["config"].update(devices=str(jax.devices()), cpu_count=os.cpu_count(), load_average_end=os.getloadavg())
    text = ["## grid (categorical emissions, V = 8; seconds per call, medians; speed-up = other side's time "
            "over gm's)", "", grid_table(res), ""]
    if res["dropped"]:
        text += ["dropped (one call predicted over the limit): " + "; ".join(
            f"K={d['K']} B={d['B']} T={d['T']} {d['task']} {d['side']} "
            + (f"({d['bytes'] / 2**20:.0f} MiB of matrices)" if "bytes" in d else f"({d['predicted_s']:.0f} s)")
            for d in res["dropped"]), ""]
    if res["not_run"]:
        text += ["not run (time budget): " + ", ".join(f"K={k} B={b} T={t}" for k, b, t in res["not_run"]), ""]
    if res.get("long"):
        text += ["## one sequence T={T}, K={K}".format(**kw["long_cell"]), "",
                 _table([[k, f"{v['median_s']:.4f}", f"{v['compile_s']:.2f}"] for k, v in res["long"].items()],
                        ["smoother", "median s", "compile s"]), "",
                 "log-evidence abs error vs float64 (nats): " + ", ".join(
                     f"{k}: {v:.3g}" for k, v in res["long_abs_error_nats"].items()), ""]
    worst = {}
    for cell in res["cells"].values():
        for k, v in cell["agreement"].items():
            worst[k] = max(worst.get(k, 0.0), v)
    text += ["largest disagreement over the cells: " + json.dumps(worst)]
    report = "\n".join(text)
    print(report)
    res["worst_agreement"] = worst
    write_results(os.path.join(args.out, "results.json"), res)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(report + "\n")
    if res["cells"]:
        grid_heatmap(res, os.path.join(args.out, "grid_speedup.png"))
    return res


# ------------------------------------------------------------------------- structured DBNs at scale

DBN_KINDS = ("factorial", "coupled")


def _dbn_problem(kind, M, K, V, rng):
    """A random DBN of ``kind`` with M chains of K states and its flattened K^M-state HMM: (model,
    flattened initial f64[K^M], transition f64[K^M, K^M] or None where it would not fit, the leaves' CPTs
    as (leaf variable, its chains, f64[*K, V]) for the flattened log-likelihoods).

    factorial: ``dbn.factorial_hmm`` (independent chains, one observation of all chains). coupled: chain m
    depends on the previous states of chains m - 1, m, m + 1 and has its own observation (the coupled HMM
    of Murphy 2002, fig. 2.11, M chains)."""
    from gm.temporal import dbn

    inits = [rng.dirichlet(np.ones(K)) for _ in range(M)]
    names = [f"h{m + 1}" for m in range(M)]
    if kind == "factorial":
        trans = [0.7 * np.eye(K) + 0.3 * rng.dirichlet(np.ones(K), size=K) for _ in range(M)]
        emission = rng.dirichlet(np.ones(V), size=(K,) * M)
        model = dbn.factorial_hmm(inits, trans, emission)
        leaves = [(M, tuple(range(M)), emission)]
        parents = [(m,) for m in range(M)]
    else:
        parents = [tuple(j for j in (m - 1, m, m + 1) if 0 <= j < M) for m in range(M)]
        trans = [rng.dirichlet(np.ones(K) * 0.5, size=(K,) * len(p)) for p in parents]
        emits = [rng.dirichlet(np.ones(V), size=K) for _ in range(M)]
        ys = [f"y{m + 1}" for m in range(M)]
        model = dbn.from_dict(
            {**{n: K for n in names}, **{y: V for y in ys}},
            initial_parents={y: [n] for y, n in zip(ys, names)},
            transition_parents={**{n: [names[j] + "[-1]" for j in p] for n, p in zip(names, parents)},
                                **{y: [n] for y, n in zip(ys, names)}},
            initial_cpts={**dict(zip(names, inits)), **dict(zip(ys, emits))},
            transition_cpts={**dict(zip(names, trans)), **dict(zip(ys, emits))})
        leaves = [(M + m, (m,), emits[m]) for m in range(M)]
    S = K**M
    A = None
    if 4 * S * S <= 2**31:  # the flattened transition, where it fits in 2 GiB
        A = np.ones((S, S))
        prev = np.unravel_index(np.arange(S), (K,) * M)
        for m, p in enumerate(parents):  # A[s, s'] = Π_m p(h'_m | h_pa(m)(s))
            A *= trans[m][tuple(prev[j] for j in p)][:, prev[m]]
    return model, _kron_all(inits), A, leaves


def _dbn_flat_loglik(leaves, M, K, ev):
    """f32[B, T, K^M]: log p(observations | joint chain state) of the flattened HMM (inside the jit)."""
    S = K**M
    ll = 0.0
    for var, chains, cpt in leaves:
        table = jnp.log(jnp.asarray(cpt, jnp.float32))  # [*K of chains, V]
        shape = [1] * M + [cpt.shape[-1]]
        for c in chains:
            shape[c] = K
        table = jnp.broadcast_to(table.reshape(shape), (K,) * M + (cpt.shape[-1],)).reshape(S, -1)
        ll = ll + jnp.moveaxis(table[:, ev[:, :, var]], 0, -1)
    return ll


def _frontier_madds(parents, K):
    """Multiply-adds per sequence of one forward step of the chain path: chain m's CPT multiplied into a
    message over the next states so far and the previous states still needed (M K^(M+1) for a factorial
    HMM)."""
    M = len(parents)
    last = {j: max(m for m in range(M) if j in parents[m]) for j in range(M)}
    held, total = set(range(M)), 0
    for m in range(M):
        total += K ** (len(held | set(parents[m])) + 1)
        held = {j for j in held if last.get(j, M) > m} | {M + k for k in range(m + 1)}
    return total


def _compiled_temp_bytes(fn, *args):
    """XLA's own count of a compiled call's temporary buffers (``memory_analysis``), or None."""
    try:
        m = jax.jit(fn).lower(*args).compile().memory_analysis()
        return int(m.temp_size_in_bytes + m.output_size_in_bytes)
    except Exception:  # pragma: no cover - backends without the analysis
        return None


def bench_dbn_scaling(Ms, Ks, *, kinds=DBN_KINDS, B=16, T=100, V=8, repeats=3, max_call_s=30.0, out=None):
    """Structured DBN smoothing (``dbn.smoother`` on the batch: the chain fast path) against the
    flattened K^M-state HMM (``tm.smoother`` vmapped, log-likelihoods computed in the same jit) and the
    general 2-TBN engine (``method="general"``, batch-minor), over M chains x K states, same sequences.

    Cells run cheapest first (K^M); a side is skipped where its flattened transition would not fit in
    2 GiB, or where one call is predicted (from the same side's last cell, scaled by its multiply-adds
    per step) to take over ``max_call_s``. Every timed cell asserts that the chains' marginals and the
    log-evidence of the structured path equal the flattened HMM's (and the general engine's) to 1e-5.
    Memory: the bytes of each side's largest buffers, computed, and XLA's count of the compiled call's
    temporaries and outputs."""
    from gm.temporal import dbn

    rows, skipped, measured = [], [], {}
    cells = sorted(((kind, M, K) for kind in kinds for M in Ms for K in Ks),
                   key=lambda c: (kinds.index(c[0]), c[2] ** c[1], c))
    for kind, M, K in cells:
        S = K**M
        print(f"dbn scaling {kind} M={M} K={K} ({S} states, load {os.getloadavg()[0]:.1f}) ...", flush=True)
        rng = np.random.default_rng(M * 100 + K)
        model, pi, A, leaves = _dbn_problem(kind, M, K, V, rng)
        ev = jax.vmap(lambda k: dbn.sample(k, model, T))(jax.random.split(jax.random.key(M * 100 + K), B))
        ev = ev.at[:, :, :M].set(-1)  # the chains hidden, every observation seen
        names = [f"h{m + 1}" for m in range(M)]
        parents = dbn.factorial_layout(model.structure).chain_parents
        frontier = _frontier_madds(parents, K)
        work = {"structured": 3 * frontier, "flattened": 2 * S * S, "general": 3 * frontier}
        C = max(1, min(max(1, (4 << 20) // (4 * S * B)), round(T**0.5), T))
        mem = {"structured": 4 * S * B * (-(-T // C) + C + 2),  # checkpoints, one block, two messages
               "flattened": 4 * S * S + 3 * 4 * B * T * S,  # transition; log-likelihoods, messages, marginals
               "general": 2 * 4 * T * S * B}  # every alpha and beta
        fns = {"structured": (lambda m, e: (lambda p: (p.log_evidence, tuple(p.marginals[n] for n in names)))(
                   dbn.smoother(m, e, method="factorial")), (model, ev))}
        if A is not None:
            def flat(pi, A, ev, M=M, K=K, leaves=leaves):
                post = jax.vmap(tm.smoother, in_axes=(None, None, 0))(pi, A, _dbn_flat_loglik(leaves, M, K, ev))
                joint = post.marginals.reshape((B, T) + (K,) * M)
                return post.log_evidence, tuple(
                    joint.sum(axis=tuple(2 + j for j in range(M) if j != m)) for m in range(M))
            fns["flattened"] = (flat, (jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32), ev))
        else:
            skipped.append(dict(kind=kind, M=M, K=K, side="flattened", why=f"transition {4 * S * S / 2**30:.0f} GiB"))
        fns["general"] = (lambda m, e: (lambda p: (p.log_evidence, tuple(p.marginals[n] for n in names)))(
            dbn.smoother(m, e, method="general")), (model, ev))
        row = dict(kind=kind, M=M, K=K, states=S, B=B, T=T, load_average=os.getloadavg()[0],
                   structured_madds_per_step=work["structured"] // 3, flattened_madds_per_step=S * S)
        outs = {}
        for side, (fn, args) in fns.items():
            prev = measured.get((kind, side))
            predicted = None if prev is None else prev[1] * work[side] / prev[0]
            if predicted is not None and predicted > max_call_s:
                skipped.append(dict(kind=kind, M=M, K=K, side=side, why=f"predicted {predicted:.0f} s a call"))
                continue
            if side == "general" and mem[side] > 2**30:
                skipped.append(dict(kind=kind, M=M, K=K, side=side, why=f"alphas and betas {mem[side] / 2**30:.1f} GiB"))
                continue
            jitted = jax.jit(fn)
            med, comp, cpu = _timeit(lambda: jitted(*args), repeats if predicted is None or predicted > 0.05 else 10)
            measured[(kind, side)] = (work[side], med)
            outs[side] = jitted(*args)
            row[side] = dict(median_s=med, cpu_s=cpu, compile_s=comp, largest_buffers_bytes=mem[side],
                             xla_temp_and_output_bytes=_compiled_temp_bytes(fn, *args))
        if "structured" in outs:
            for side in ("flattened", "general"):
                if side in outs:
                    a, b = outs["structured"], outs[side]
                    d = max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a[1], b[1]))
                    rel = float(jnp.max(jnp.abs(a[0] - b[0]) / jnp.abs(b[0])))
                    row[f"max |marginals - {side}|"], row[f"max |log-ev - {side}| rel"] = d, rel
                    # against the flattened HMM to 1e-5; two float32 structured paths summing 32,768 joint
                    # states in different orders differ by a few 1e-5 (M = 5, K = 8)
                    tol = 1e-5 if side == "flattened" else 1e-4
                    assert d < tol and rel < 1e-5, (kind, M, K, side, d, rel)
        rows.append(row)
        if out is not None:
            write_results(os.path.join(out, "results.json"), {"rows": rows, "skipped": skipped})
    return rows, skipped


def dbn_scaling_table(rows):
    """Markdown: one row per (kind, M, K): seconds per side, speed-ups, memory."""
    def sec(r, side):
        return f"{r[side]['median_s']:.4g}" if side in r else "-"

    def speed(r, side):
        return f"{r[side]['median_s'] / r['structured']['median_s']:.1f}x" if side in r and "structured" in r else "-"

    def mib(r, side):
        return f"{r[side]['largest_buffers_bytes'] / 2**20:.1f}" if side in r else "-"

    def default(r):  # the flattened HMM's time over that of the side ``method="auto"`` takes
        from gm.temporal.dbn.inference import COUPLED_CHAIN_MIN_STATES

        side = "structured" if r["kind"] == "factorial" or r["states"] >= COUPLED_CHAIN_MIN_STATES else "general"
        return f"{r['flattened']['median_s'] / r[side]['median_s']:.1f}x" if "flattened" in r and side in r else "-"

    out = []
    for r in rows:
        out.append([r["kind"], r["M"], r["K"], r["states"], r["structured_madds_per_step"], r["flattened_madds_per_step"],
                    sec(r, "structured"), sec(r, "flattened"), sec(r, "general"), speed(r, "flattened"),
                    speed(r, "general"), default(r),
                    f"{mib(r, 'structured')} / {mib(r, 'flattened')} / {mib(r, 'general')}", f"{r['load_average']:.1f}"])
    return _table(out, ["kind", "M", "K", "K^M", "structured madds/step", "flattened madds/step", "structured s",
                        "flattened s", "general engine s", "speed-up vs flattened", "vs general",
                        "default (auto) vs flattened", "largest buffers MiB (structured / flattened / general)",
                        "load"])


def dbn_scaling_plot(rows, path):
    """PNG: the structured path's speed-up over the flattened HMM against K^M, one line per kind and M."""
    from experiments._common import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in zip(DBN_KINDS, "os"):
        for M in sorted({r["M"] for r in rows}):
            pts = [(r["states"], r["flattened"]["median_s"] / r["structured"]["median_s"]) for r in rows
                   if r["kind"] == kind and r["M"] == M and "flattened" in r and "structured" in r]
            if pts:
                ax.plot(*zip(*pts), marker=marker, label=f"{kind}, M={M}")
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("joint states K^M")
    ax.set_ylabel("flattened tm.smoother s / structured s (wall)")
    ax.set_title("structured DBN smoothing against the flattened HMM")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main_dbn_scaling(args):
    """``--only dbn-scaling``: the (kind, M, K) grid, results.md / results.json and dbn_scaling.png."""
    os.makedirs(args.out, exist_ok=True)
    kw = (dict(Ms=[2, 3], Ks=[2, 3], B=4, T=20, repeats=1) if args.quick else
          dict(Ms=args.Ms, Ks=args.dbn_Ks, B=args.dbn_B, T=args.dbn_T))
    start = time.perf_counter()
    rows, skipped = bench_dbn_scaling(**kw, max_call_s=args.dbn_max_call_s, out=args.out)
    res = {"config": dict(kw, devices=str(jax.devices()), cpu_count=os.cpu_count(), seconds=time.perf_counter() - start,
                          load_average_end=os.getloadavg()), "rows": rows, "skipped": skipped}
    text = [f"## structured DBN smoothing against the flattened HMM (B = {kw['B']}, T = {kw['T']}; wall s, medians)",
            "", dbn_scaling_table(rows), ""]
    if skipped:
        text += ["skipped: " + "; ".join(f"{s['kind']} M={s['M']} K={s['K']} {s['side']} ({s['why']})"
                                         for s in skipped), ""]
    report = "\n".join(text)
    print(report)
    write_results(os.path.join(args.out, "results.json"), res)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(report + "\n")
    dbn_scaling_plot(rows, os.path.join(args.out, "dbn_scaling.png"))
    return res


def _kron_all(mats):
    out = np.asarray(mats[0])
    for m in mats[1:]:
        out = np.kron(out, np.asarray(m))
    return out


def _table(rows, header):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/bench_hmm")
    ap.add_argument("--cpu-devices", type=int, default=1,
                    help="split the host CPU into this many JAX devices (adds sharded factorial rows)")
    ap.add_argument("--only", choices=["all", "factorial", "dbn-scaling"], default="all")
    ap.add_argument("--grid", action="store_true", help="the grid of (K, B, T) cells and tasks instead")
    ap.add_argument("--Ks", type=int, nargs="+", default=[2, 4, 16, 64, 256])
    ap.add_argument("--Bs", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--Ts", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--long-T", type=int, default=1_000_000, help="the grid's one long sequence (K = 16); 0: none")
    ap.add_argument("--max-call-s", type=float, default=60.0, help="grid: drop a side whose call would take longer")
    ap.add_argument("--budget-s", type=float, default=None, help="grid: start no cell after this many seconds")
    ap.add_argument("--tasks", nargs="+", choices=GRID_TASKS, default=list(GRID_TASKS), help="grid: the tasks timed")
    ap.add_argument("--sides", nargs="+", choices=["gm", "gm associative", "dynamax", "hmmlearn"],
                    default=["gm", "gm associative", "dynamax", "hmmlearn"], help="grid: the libraries timed")
    ap.add_argument("--Ms", type=int, nargs="+", default=[2, 3, 4, 5], help="dbn-scaling: numbers of chains")
    ap.add_argument("--dbn-Ks", type=int, nargs="+", default=[2, 4, 8, 16], help="dbn-scaling: states per chain")
    ap.add_argument("--dbn-B", type=int, default=16, help="dbn-scaling: sequences")
    ap.add_argument("--dbn-T", type=int, default=100, help="dbn-scaling: steps")
    ap.add_argument("--dbn-max-call-s", type=float, default=30.0, help="dbn-scaling: skip a side whose call would take longer")
    parallel.add_distributed_args(ap)
    args = ap.parse_args(argv)
    if args.cpu_devices > 1:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)  # before JAX's backend starts
    parallel.initialize_from_args(args)
    if args.grid:
        return main_grid(args)
    if args.only == "dbn-scaling":
        return main_dbn_scaling(args)
    if args.quick:
        Ks, B, T, reps, hreps, longT, longK = [4], 8, 50, 2, 1, 2000, 8
        fact = dict(M=2, K=3, V=4, B=4, T=30, repeats=2)
    else:
        Ks, B, T, reps, hreps, longT, longK = [4, 16, 64], 256, 1000, 7, 3, 100_000, 100
        fact = dict(M=3, K=6, V=8, B=256, T=1000, repeats=5)
    # scaling rows (M, K): structured O(T M K^(M+1)) against flattened O(T K^(2M)) work per sequence
    scaling = (dict(points=[(2, 2), (2, 3)], B=4, T=20, repeats=1) if args.quick else
               dict(points=[(3, 2), (3, 3), (3, 4), (3, 6), (2, 4), (4, 4)], B=64, T=200, repeats=3))
    os.makedirs(args.out, exist_ok=True)
    results = {"config": dict(B=B, T=T, Ks=Ks, long_T=longT, long_K=longK, factorial=fact,
                              devices=str(jax.devices()), cpu_count=os.cpu_count(),
                              load_average=os.getloadavg()),
               "batch": {}, "agreement": {}}
    if args.only == "factorial":
        Ks, results["long"] = [], None
    for K in Ks:
        print(f"batch B={B} T={T} K={K} ...", flush=True)
        results["batch"][K], results["agreement"][K] = bench_batch(K, B, T, 8, reps, hreps)
    if args.only == "all":
        print(f"long sequence T={longT} K={longK} ...", flush=True)
        results["long"], results["long_abs_error_nats"] = bench_long(longT, longK, max(1, reps // 2))
    try:
        print("factorial HMM ...", flush=True)
        results["factorial"], results["factorial_max_abs_diff"] = bench_factorial(**fact)
        print("factorial HMM scaling ...", flush=True)
        results["factorial_scaling"] = bench_factorial_scaling(**scaling)
        results["config"]["factorial_scaling"] = {k: v for k, v in scaling.items() if k != "points"}
    except ImportError as e:  # pragma: no cover
        print("factorial skipped:", e)
    results["load_average_end"] = os.getloadavg()

    # "posterior" is gm's smoothing from the observations (tm.posterior), against the same smoothers
    tasks = ["smoother", "posterior", "viterbi", "em step"]
    libs = ["gm", "dynamax", "hmmlearn-scaling", "hmmlearn-log"]

    def key(lib, task):
        return f"{lib} {'smoother' if task == 'posterior' and lib != 'gm' else task}"

    rows = []
    for K in Ks:
        r = results["batch"][K]
        for task in tasks:
            cells = [f"{r[key(lib, task)]['median_s']:.4f}" if key(lib, task) in r else "-" for lib in libs]
            g = r[key("gm", task)]["median_s"]
            speed = [f"{r[key(lib, task)]['median_s'] / g:.1f}x" for lib in libs[1:] if key(lib, task) in r]
            gc, dc = r[key("gm", task)]["cpu_s"], r[key("dynamax", task)]["cpu_s"]
            cpu = f"{gc:.4f} / {dc:.4f} ({dc / gc:.2f}x)"
            rows.append([K, task] + cells + [" / ".join(speed), cpu, f"{r[key('gm', task)]['compile_s']:.2f}"])
    text = [f"## B={B}, T={T}, categorical emissions (seconds, median of {reps} / {hreps} for hmmlearn)", "",
            _table(rows, ["K", "task"] + libs + ["gm speed-up vs dynamax / hmmlearn-scaling / -log",
                                                  "CPU s gm / dynamax (speed-up)", "gm compile s"]), ""]
    lr = results["long"] or {}
    text += [] if not lr else [f"## one sequence T={longT}, K={longK}", "",
             _table([[k, f"{v['median_s']:.4f}", f"{v['compile_s']:.2f}"] for k, v in lr.items()],
                    ["smoother", "median s", "compile s"]), "",
             "log-evidence abs error vs float64 (nats): " + ", ".join(
                 f"{k}: {v:.3g}" for k, v in results["long_abs_error_nats"].items()), ""]
    if "factorial" in results:
        fr = results["factorial"]
        fl = fr["flattened smoother (tm.smoother, vmapped)"]
        fp = fr["flattened posterior (tm.posterior, vmapped)"]
        text += [f"## factorial HMM M={fact['M']}, K={fact['K']} (B={fact['B']}, T={fact['T']}, "
                 f"{fact['K'] ** fact['M']} flattened states)", "",
                 _table([[k, f"{v['median_s']:.4f}", f"{v['cpu_s']:.4f}",
                          f"{fl['median_s'] / v['median_s']:.2f}x / {fl['cpu_s'] / v['cpu_s']:.2f}x",
                          f"{fp['median_s'] / v['median_s']:.2f}x / {fp['cpu_s'] / v['cpu_s']:.2f}x",
                          f"{v['compile_s']:.2f}"] for k, v in fr.items()],
                        ["", "median s", "CPU s", "speed-up vs flattened tm.smoother (wall / CPU)",
                         "vs flattened tm.posterior (wall / CPU)", "compile s"]), "",
                 f"agreement and per-step cost: {json.dumps(results['factorial_max_abs_diff'])}", ""]
    if "factorial_scaling" in results:
        sc = results["config"]["factorial_scaling"]
        text += [f"## factorial HMM scaling (B={sc['B']}, T={sc['T']}; CPU s)", "",
                 _table([[r["M"], r["K"], r["states"], r["structured_madds"], r["flattened_madds"],
                          f"{r['structured_cpu_s']:.4f}", f"{r['flattened_cpu_s']:.4f}",
                          f"{r['flattened_cpu_s'] / r['structured_cpu_s']:.2f}x", f"{r['max_abs_marginal_diff']:.1e}"]
                         for r in results["factorial_scaling"]],
                        ["M", "K", "K^M", "structured madds/step (M K^(M+1))", "flattened madds/step (K^(2M))",
                         "structured CPU s", "flattened CPU s", "speed-up", "max |marginal diff|"]), ""]
    text += ["agreement: " + json.dumps(results["agreement"])]
    report = "\n".join(text)
    print(report)
    write_results(os.path.join(args.out, "results.json"), results)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(report + "\n")
    return results


if __name__ == "__main__":
    main()
