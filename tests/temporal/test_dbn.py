"""2-TBN inference against enumeration of the unrolled network and against gm.bn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbn_oracle import enumerate_unrolled
from gm.temporal import dbn
from gm.types import MPE


def _dist(rng, *shape):
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]) if len(shape) > 1 else rng.dirichlet(np.ones(shape[0]))


def _models(rng):
    K, V = 2, 3
    fact = dbn.factorial_hmm([_dist(rng, K), _dist(rng, 3)], [_dist(rng, K, K), _dist(rng, 3, 3)],
                             _dist(rng, K, 3, V))
    coupled = dbn.coupled_hmm(_dist(rng, 2), _dist(rng, 3), _dist(rng, 2, 3, 2), _dist(rng, 3, 2, 3),
                              _dist(rng, 2, V), _dist(rng, 3, 2))
    zipper = dbn.boltzmann_zipper(_dist(rng, 2), _dist(rng, 2, 2), _dist(rng, 2, V), _dist(rng, 2, 3),
                                  _dist(rng, 3, 2, 3), _dist(rng, 3, 2))
    return {"factorial": fact, "coupled": coupled, "zipper": zipper}


def _evidence(rng, model, T, p_obs=0.6):
    ev = np.full((T, len(model.names)), -1, np.int32)
    for i, c in enumerate(model.cards):
        observed = rng.random(T) < (p_obs if model.names[i] in ("x", "y") else 0.15)
        ev[observed, i] = rng.integers(0, c, size=observed.sum())
    return ev


def _by_name(model, ev):
    return {f"{n}_{t}": int(ev[t, i]) for t in range(ev.shape[0]) for i, n in enumerate(model.names)}


@pytest.mark.parametrize("kind", ["factorial", "coupled", "zipper"])
def test_constructors_match_enumeration_of_the_unrolled_network(kind):
    rng = np.random.default_rng(["factorial", "coupled", "zipper"].index(kind))
    model = _models(rng)[kind]
    T = 3
    smooth, filt, mpe = jax.jit(dbn.smoother), jax.jit(dbn.filter), jax.jit(dbn.mpe)
    for trial in range(3):
        ev = _evidence(rng, model, T)
        ref = enumerate_unrolled(dbn.unroll_dict(model, T), _by_name(model, ev))
        post = smooth(model, jnp.asarray(ev))
        np.testing.assert_allclose(post.log_evidence, ref["log_z"], rtol=1e-5, atol=1e-5)
        for n in model.names:
            want = np.stack([ref["marginals"][f"{n}_{t}"] for t in range(T)])
            np.testing.assert_allclose(post.marginals[n], want, atol=2e-6)
        f = filt(model, jnp.asarray(ev))
        for t in range(T):
            r = enumerate_unrolled(dbn.unroll_dict(model, t + 1), _by_name(model, ev[: t + 1]))
            for n in model.names:
                np.testing.assert_allclose(f.marginals[n][t], r["marginals"][f"{n}_{t}"], atol=2e-6)
        best = mpe(model, jnp.asarray(ev))
        assert isinstance(best, MPE)
        states, value = best
        np.testing.assert_allclose(value, ref["mpe_logp"], rtol=1e-5, atol=1e-5)
        if ref["mpe_gap"] > 1e-4:
            want = np.array([[ref["mpe"][f"{n}_{t}"] for n in model.names] for t in range(T)])
            np.testing.assert_array_equal(states, want)


def test_unrolled_bayesnet_marginals_agree():
    from gm import bn

    rng = np.random.default_rng(10)
    model = _models(rng)["coupled"]
    T = 4
    ev = _evidence(rng, model, T)
    net = dbn.unroll(model, T)
    obs = {k: str(v) for k, v in _by_name(model, ev).items() if v >= 0}
    ref = bn.marginals(net, net.evidence(obs))
    post = dbn.smoother(model, jnp.asarray(ev))
    for t in range(T):
        for n in model.names:
            np.testing.assert_allclose(post.marginals[n][t], ref[f"{n}_{t}"], atol=1e-5)
    np.testing.assert_allclose(post.log_evidence, bn.log_evidence(net, net.evidence(obs)), rtol=1e-5)


def test_vmap_over_evidence_and_long_sequence():
    rng = np.random.default_rng(11)
    model = _models(rng)["zipper"]
    evs = np.stack([_evidence(rng, model, 50) for _ in range(4)])
    batch = jax.jit(jax.vmap(lambda e: dbn.smoother(model, e)))(jnp.asarray(evs))
    one = dbn.smoother(model, jnp.asarray(evs[2]))
    np.testing.assert_allclose(batch.log_evidence[2], one.log_evidence, rtol=1e-6)
    for n in model.names:
        np.testing.assert_allclose(batch.marginals[n][2], one.marginals[n], atol=1e-6)
        np.testing.assert_allclose(np.asarray(batch.marginals[n]).sum(-1), 1.0, atol=1e-5)


def test_factorial_cost_follows_the_structure():
    M, K = 3, 6
    rng = np.random.default_rng(12)
    model = dbn.factorial_hmm([_dist(rng, K)] * M, [_dist(rng, K, K)] * M, _dist(rng, *([K] * M), 4))
    flops = dbn.step_flops(model)
    # one chain at a time: M K^(M+1) for the transitions plus K^M V for the emission table
    assert flops <= 2 * (M * K ** (M + 1) + K**M * 4), flops
    assert flops < K ** (2 * M) / 5


@pytest.mark.parametrize("T", [1, 12, 13, 37])
def test_factorial_equals_flattened_hmm(T):
    """The factorial fast path (batched and single-sequence) against gm's HMM smoother on the flattened
    product chain, with chain observations and missing x mixed in (enumeration: the constructors test).
    T = 13 and 37 are not multiples of the checkpoint block (3 and 6 steps): the last block is padded."""
    from gm import temporal as tm

    rng = np.random.default_rng(13)
    Ks, V, B = (3, 2), 4, 3
    inits, trans = [_dist(rng, k) for k in Ks], [_dist(rng, k, k) for k in Ks]
    emis = _dist(rng, *Ks, V)
    model = dbn.factorial_hmm(inits, trans, emis)
    ev = np.full((B, T, 3), -1, np.int32)
    ev[:, :, 2] = rng.integers(0, V, size=(B, T))
    ev[rng.random((B, T)) < 0.2, 2] = -1  # missing observations
    for m, k in enumerate(Ks):
        seen = rng.random((B, T)) < 0.15
        ev[seen, m] = rng.integers(0, k, size=seen.sum())
    post = jax.jit(dbn.smoother)(model, jnp.asarray(ev))
    assert post.log_evidence.shape == (B,) and post.marginals["x"].shape == (B, T, V)
    pi, A = np.kron(inits[0], inits[1]), np.kron(trans[0], trans[1])
    table = emis.reshape(-1, V)
    with np.errstate(divide="ignore"):
        ll = np.where(ev[:, :, 2:3] >= 0, np.log(table[:, np.maximum(ev[:, :, 2], 0)]).transpose(1, 2, 0), 0.0)
        for m, k in enumerate(Ks):
            lam = np.where(ev[:, :, m:m + 1] >= 0, np.arange(k) == ev[:, :, m:m + 1], True)
            lam = np.broadcast_to(lam[:, :, :, None] if m == 0 else lam[:, :, None, :], (B, T, *Ks))
            ll = ll + np.log(lam).reshape(B, T, -1)
    flat = jax.vmap(tm.smoother, in_axes=(None, None, 0))(
        jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32), jnp.asarray(ll, jnp.float32))
    np.testing.assert_allclose(post.log_evidence, flat.log_evidence, rtol=1e-5)
    m = np.asarray(flat.marginals).reshape(B, T, *Ks)
    np.testing.assert_allclose(post.marginals["h1"], m.sum(3), atol=1e-5)
    np.testing.assert_allclose(post.marginals["h2"], m.sum(2), atol=1e-5)
    px = m.reshape(B, T, -1) @ table  # p(x_t | e) where x_t is missing
    want_x = np.where(ev[:, :, 2:3] >= 0, np.eye(V)[np.maximum(ev[:, :, 2], 0)], px)
    np.testing.assert_allclose(post.marginals["x"], want_x, atol=1e-5)
    # vmap of the single-sequence call is routed to the batched path (single sequences: the
    # constructors test, against enumeration)
    mapped = jax.vmap(dbn.smoother, in_axes=(None, 0))(model, jnp.asarray(ev))
    for n in model.names:
        np.testing.assert_allclose(mapped.marginals[n], post.marginals[n], atol=1e-6)


def _coupled_chains(rng, Ks, V):
    """Chain m depends on the previous states of chains m - 1, m, m + 1 and emits its own y_m."""
    M = len(Ks)
    hs, ys = [f"h{m}" for m in range(M)], [f"y{m}" for m in range(M)]
    parents = [[j for j in (m - 1, m, m + 1) if 0 <= j < M] for m in range(M)]
    trans = [_dist(rng, *[Ks[j] for j in p], Ks[m]) for m, p in enumerate(parents)]
    emits = [_dist(rng, k, V) for k in Ks]
    inits = [_dist(rng, k) for k in Ks]
    model = dbn.from_dict({**dict(zip(hs, Ks)), **{y: V for y in ys}},
                          initial_parents={y: [h] for y, h in zip(ys, hs)},
                          transition_parents={**{h: [hs[j] + "[-1]" for j in p] for h, p in zip(hs, parents)},
                                              **{y: [h] for y, h in zip(ys, hs)}},
                          initial_cpts={**dict(zip(hs, inits)), **dict(zip(ys, emits))},
                          transition_cpts={**dict(zip(hs, trans)), **dict(zip(ys, emits))})
    return model, inits, trans, emits, parents


def test_coupled_chains_equal_flattened_hmm():
    """Coupled chains (each on its neighbours' previous states) on the chain path (method="factorial",
    one CPT at a time) equal gm's HMM smoother on the flattened product chain, and so does the batch-minor general engine
    (method="general" on a batch). T = 13: a padded last block."""
    from gm import temporal as tm

    rng = np.random.default_rng(21)
    Ks, V, B, T = (2, 3, 2), 3, 3, 13
    model, inits, trans, emits, parents = _coupled_chains(rng, Ks, V)
    assert dbn.factorial_layout(model.structure).chain_parents == ((0, 1), (0, 1, 2), (1, 2))
    ev = np.stack([_evidence(rng, model, T) for _ in range(B)])
    ev[:, :, 3:] = rng.integers(0, V, size=(B, T, 3))  # y observed (names y0.. are not "x"/"y")
    ev[rng.random((B, T)) < 0.2, 4] = -1
    post = jax.jit(lambda e: dbn.smoother(model, e, method="factorial"))(jnp.asarray(ev))
    # the flattened chain: A[s, s'] = Π_m p(h'_m | h_pa(m)), likelihood Π_m λ(h_m) p(y_m | h_m)
    S = int(np.prod(Ks))
    idx = np.unravel_index(np.arange(S), Ks)
    A = np.ones((S, S))
    for m, p in enumerate(parents):
        A *= trans[m][tuple(idx[j] for j in p)][:, idx[m]]
    pi = np.prod([inits[m][idx[m]] for m in range(3)], axis=0)
    lik = np.ones((B, T, S))
    for m in range(3):
        e_h, e_y = ev[:, :, m, None], ev[:, :, 3 + m, None]
        lik *= np.where(e_h >= 0, idx[m] == e_h, 1.0) * np.where(e_y >= 0, emits[m][idx[m], np.maximum(e_y, 0)], 1.0)
    with np.errstate(divide="ignore"):
        ll = np.log(lik)
    flat = jax.vmap(tm.smoother, in_axes=(None, None, 0))(
        jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32), jnp.asarray(ll, jnp.float32))
    np.testing.assert_allclose(post.log_evidence, flat.log_evidence, rtol=1e-5)
    joint = np.asarray(flat.marginals).reshape(B, T, *Ks)
    for m in range(3):
        want = joint.sum(axis=tuple(2 + j for j in range(3) if j != m))
        np.testing.assert_allclose(post.marginals[f"h{m}"], want, atol=1e-5)
    general = jax.jit(dbn.smoother)(model, jnp.asarray(ev))  # auto: the batch-minor general engine
    np.testing.assert_allclose(general.log_evidence, post.log_evidence, rtol=1e-5)
    for n in model.names:
        np.testing.assert_allclose(general.marginals[n], post.marginals[n], atol=1e-5)


def test_sample_statistics_and_errors():
    rng = np.random.default_rng(14)
    model = _models(rng)["coupled"]
    xs = jax.vmap(lambda k: dbn.sample(k, model, 3))(jax.random.split(jax.random.key(0), 4000))
    assert xs.shape == (4000, 3, 4)
    h0 = np.bincount(np.asarray(xs[:, 0, 0]), minlength=2) / 4000
    np.testing.assert_allclose(h0, model.initial_cpts[0], atol=0.03)
    # p(h_1 | h_0, v_0) from samples
    h, v = np.asarray(xs[:, 0, 0]), np.asarray(xs[:, 0, 1])
    hv = np.bincount(h * 3 + v, minlength=6).argmax()  # the most frequent parent configuration
    sel = (h == hv // 3) & (v == hv % 3)
    freq = np.bincount(np.asarray(xs[sel, 1, 0]), minlength=2) / sel.sum()
    np.testing.assert_allclose(freq, model.transition_cpts[0][hv // 3, hv % 3], atol=0.05)
    with pytest.raises(ValueError, match="'x'"):
        dbn.from_dict({"h": 2, "x": 3}, transition_parents={"h": ["h[-1]"], "x": ["h"]},
                      initial_cpts={"h": [0.5, 0.5], "x": np.ones((3, 3)) / 3},
                      transition_cpts={"h": np.eye(2), "x": np.ones((2, 3)) / 3})
    with pytest.raises(ValueError, match="evidence"):
        dbn.smoother(model, jnp.zeros((3, 2), jnp.int32))


def test_expected_counts_match_enumeration():
    rng = np.random.default_rng(15)
    model = _models(rng)["coupled"]
    T = 3
    ev = _evidence(rng, model, T)
    # expected counts of p(h_1 | h_0, v_0) against enumeration of the unrolled network
    ci, ct, value = dbn.expected_counts(model, jnp.asarray(ev))
    ref = enumerate_unrolled(dbn.unroll_dict(model, T), _by_name(model, ev))
    np.testing.assert_allclose(value, ref["log_z"], rtol=1e-5)
    np.testing.assert_allclose(float(jnp.sum(ct[0])), T - 1, rtol=1e-5)  # one h-transition per later slice
    np.testing.assert_allclose(float(jnp.sum(ci[0])), 1.0, rtol=1e-5)


def test_smoother_methods():
    """method="general" runs the general engine on a factorial structure (the same answer as the fast
    path); method="factorial" refuses a structure that is not factorial."""
    rng = np.random.default_rng(16)
    models = _models(rng)
    fact = models["factorial"]
    ev = jnp.asarray(_evidence(rng, fact, 5))
    fast, general = dbn.smoother(fact, ev), dbn.smoother(fact, ev, method="general")
    np.testing.assert_allclose(general.log_evidence, fast.log_evidence, rtol=1e-5)
    for n in fact.names:
        np.testing.assert_allclose(general.marginals[n], fast.marginals[n], atol=1e-5)
    with pytest.raises(ValueError, match="factorial"):
        dbn.smoother(models["zipper"], jnp.asarray(_evidence(rng, models["zipper"], 5)), method="factorial")
    with pytest.raises(ValueError, match="method"):
        dbn.smoother(fact, ev, method="fast")


def test_auto_sends_large_coupled_chains_to_the_chain_path(monkeypatch):
    """``method="auto"`` on coupled chains: the general engine below ``COUPLED_CHAIN_MIN_STATES`` joint
    states, the chain path from there (lowered here to the test model's 6 states); same answers."""
    from gm.temporal.dbn import inference

    rng = np.random.default_rng(17)
    coupled = _models(rng)["coupled"]
    ev = jnp.asarray(_evidence(rng, coupled, 6))[None]
    calls = []
    chain_path = inference.factorial_smoother
    monkeypatch.setattr(inference, "factorial_smoother", lambda *a: calls.append(1) or chain_path(*a))
    general = dbn.smoother(coupled, ev)
    assert not calls
    monkeypatch.setattr(inference, "COUPLED_CHAIN_MIN_STATES", 6)
    chains = dbn.smoother(coupled, ev)
    assert calls
    np.testing.assert_allclose(chains.log_evidence, general.log_evidence, rtol=1e-5)
    for n in coupled.names:
        np.testing.assert_allclose(chains.marginals[n], general.marginals[n], atol=1e-5)
