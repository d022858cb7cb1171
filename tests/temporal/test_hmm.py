"""gm.temporal.hmm (sequential passes) against float64 enumeration of every state path, dynamax and each other."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gm import temporal as tm
from oracles import brute_force, float64_log_evidence, random_hmm

MASKS = [
    None,
    [1, 1, 1, 1, 0, 0],  # padding at the end
    [1, 0, 1, 1, 0, 1],  # holes: masked steps are deleted from the chain
    [0, 0, 1, 1, 1, 0],  # leading masked steps: the first valid step draws from the initial distribution
    [0, 0, 0, 0, 0, 0],  # an empty sequence
]


def _mask(m):
    return None if m is None else jnp.asarray(np.asarray(m, bool))


@pytest.mark.parametrize(
    "time_varying, mask", [(False, m) for m in MASKS] + [(True, MASKS[0]), (True, MASKS[2])])
def test_every_function_matches_enumeration(time_varying, mask):
    rng = np.random.default_rng(hash((time_varying, str(mask))) % 2**32)
    pi, A, ll = random_hmm(rng, 3, 6, time_varying)
    bf = brute_force(pi, A, ll, mask)
    m = _mask(mask)
    for fn in (tm.smoother, tm.associative_smoother):
        post = jax.jit(fn)(pi, A, ll, mask=m)
        np.testing.assert_allclose(post.log_evidence, bf["log_evidence"], atol=2e-5, rtol=1e-6)
        np.testing.assert_allclose(post.marginals, bf["marginals"], atol=2e-6)
    for fn in (tm.filter, tm.associative_filter):
        f = jax.jit(fn)(pi, A, ll, mask=m)
        np.testing.assert_allclose(f.log_evidence, bf["log_evidence"], atol=2e-5, rtol=1e-6)
        np.testing.assert_allclose(f.filtered, bf["filtered"], atol=2e-6)
        np.testing.assert_allclose(jnp.sum(f.log_normalizers), bf["log_evidence"], atol=2e-5)
    xi = jax.jit(tm.two_slice_marginals)(pi, A, ll, mask=m)
    np.testing.assert_allclose(xi, bf["two_slice"], atol=2e-6)
    counts = jax.jit(tm.expected_counts)(pi, A, ll, mask=m)
    np.testing.assert_allclose(counts.transitions, bf["two_slice"].sum(0), atol=5e-6)
    np.testing.assert_allclose(counts.marginals, bf["marginals"], atol=2e-6)
    np.testing.assert_allclose(counts.log_evidence, bf["log_evidence"], atol=2e-5, rtol=1e-6)
    for fn in (tm.viterbi, tm.associative_viterbi):
        path = jax.jit(fn)(pi, A, ll, mask=m)
        np.testing.assert_array_equal(path.states, bf["path"])
        np.testing.assert_allclose(path.log_prob, bf["path_log_prob"], atol=2e-5, rtol=1e-6)


@settings(max_examples=6, deadline=None)
@given(
    K=st.integers(1, 3),
    T=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    length=st.integers(0, 6),
)
def test_smoother_and_viterbi_random_models(K, T, seed, length):
    rng = np.random.default_rng(seed)
    pi, A, ll = random_hmm(rng, K, T, sharp=0.5)
    mask = np.arange(T) < min(length, T)
    bf = brute_force(pi, A, ll, mask)
    post = tm.smoother(pi, A, ll, mask=jnp.asarray(mask))
    np.testing.assert_allclose(post.log_evidence, bf["log_evidence"], atol=5e-5, rtol=1e-5)
    np.testing.assert_allclose(post.marginals, bf["marginals"], atol=5e-6)
    path = tm.viterbi(pi, A, ll, mask=jnp.asarray(mask))
    top = bf["sorted_logp"]
    if len(top) == 1 or top[0] - top[1] > 1e-3:  # unique best path
        np.testing.assert_array_equal(path.states, bf["path"])
    np.testing.assert_allclose(path.log_prob, bf["path_log_prob"], atol=5e-5, rtol=1e-5)


def test_padding_is_exact_under_vmap():
    """A padded batch gives, on the valid steps, exactly the results of each unpadded sequence."""
    rng = np.random.default_rng(1)
    K, T = 4, 12
    pi, A, _ = random_hmm(rng, K, 2)
    lengths = np.array([12, 7, 1, 3])
    ll = rng.normal(size=(len(lengths), T, K)).astype(np.float32)
    ll[1, 7:] = 1e3  # garbage in the padding must not matter
    masks = tm.length_mask(jnp.asarray(lengths), T)
    batch = jax.jit(jax.vmap(lambda l, m: tm.smoother(pi, A, l, mask=m)))(ll, masks)
    paths = jax.jit(jax.vmap(lambda l, m: tm.viterbi(pi, A, l, mask=m)))(ll, masks)
    for b, n in enumerate(lengths):
        single = tm.smoother(pi, A, ll[b, :n])
        np.testing.assert_allclose(batch.log_evidence[b], single.log_evidence, rtol=1e-6)
        np.testing.assert_allclose(batch.marginals[b, :n], single.marginals, atol=1e-6)
        assert np.all(np.asarray(batch.marginals[b, n:]) == 0)
        p = tm.viterbi(pi, A, ll[b, :n])
        np.testing.assert_array_equal(paths.states[b, :n], p.states)
        assert np.all(np.asarray(paths.states[b, n:]) == -1)
        np.testing.assert_allclose(paths.log_prob[b], p.log_prob, rtol=1e-6)



@pytest.mark.parametrize("pointers", [True, False], ids=["int8-pointers", "pointer-free"])
def test_batch_minor_viterbi_matches_back_pointers(pointers, monkeypatch):
    """The batch-minor Viterbi (one transition; vmapped: the whole batch at once), with int8 back-pointers
    and back-pointer-free, gives the paths and log-probabilities of the per-sequence back-pointer pass
    (``unroll=1`` selects it): with gaps in the masks, an empty sequence, ties (repeated scores), T = 1, a
    mask shared by the batch, a batch of one (unbatched call) and a vmap over models (which takes the
    per-sequence pass)."""
    from gm.temporal import hmm

    monkeypatch.setattr(hmm, "_use_pointers", lambda K, B: pointers)
    rng = np.random.default_rng(7)
    K, T, B = 3, 9, 5
    pi, A, _ = random_hmm(rng, K, 2)
    ll = rng.normal(size=(B, T, K)).astype(np.float32)
    ll[1] = np.round(ll[1])  # ties between states
    masks = rng.random((B, T)) > 0.3
    masks[2] = False
    models = jnp.stack([jnp.asarray(A), jnp.full((K, K), 1.0 / K)])  # the second ties every transition

    @jax.jit
    def both(ll, masks):
        def run(**kw):
            return (jax.vmap(lambda l, m: tm.viterbi(pi, A, l, mask=m, **kw))(ll, masks),
                    jax.vmap(lambda l, m: tm.viterbi(pi, models[1], l[:1], mask=m[:1], **kw))(ll, masks),
                    jax.vmap(lambda l: tm.viterbi(pi, A, l, mask=masks[0], **kw))(ll),
                    jax.vmap(lambda a, l: tm.viterbi(pi, a, l, **kw))(models, ll[:2]),
                    tm.viterbi(pi, A, ll[3], mask=masks[3], **kw))
        return run(), run(unroll=1)

    fast, slow = both(ll, masks)
    for f, s in zip(jax.tree.leaves(fast), jax.tree.leaves(slow)):
        if f.dtype == jnp.int32:
            np.testing.assert_array_equal(f, s)
        else:
            np.testing.assert_allclose(f, s, rtol=1e-6)


def test_batch_minor_smoother_matches_the_per_sequence_passes():
    """Under ``jax.vmap`` over sequences with one model, `tm.smoother` runs the batch-minor passes; they give
    the per-sequence passes' log-evidence and marginals (``smoother_from_likelihood`` vmapped), with gaps in
    the masks, an empty sequence, an impossible step (-inf log-likelihoods: log-evidence -inf, no NaN),
    T = 1, a mask shared by the batch, K = 2 and K = 12 (the matrix-product form) and a vmap over models;
    ``jax.grad`` of the summed log-evidence runs the per-sequence passes (the same gradient as theirs)."""
    from gm.temporal.common import array_likelihood
    from gm.temporal.hmm import smoother_from_likelihood

    rng = np.random.default_rng(5)
    for K, T, B, all_cases in ((2, 9, 5, True), (12, 5, 3, False), (3, 1, 4, False)):
        pi, A, _ = random_hmm(rng, K, 2)
        pi, A = jnp.asarray(pi), jnp.asarray(A)
        ll = rng.normal(size=(B, T, K)).astype(np.float32)
        ll[0, T // 2] = -np.inf  # an impossible step
        ll = jnp.asarray(ll)
        masks = jnp.asarray(rng.random((B, T)) > 0.3).at[1].set(False).at[0, T // 2].set(True)

        def reference(p, a, l, m):
            out = smoother_from_likelihood(p, a, array_likelihood(l), l.shape[0], mask=m)
            return out.log_evidence, out.marginals

        models = jnp.stack([A, A.T / A.T.sum(1, keepdims=True)])
        cases = [lambda f: jax.vmap(lambda l, m: tuple(f(pi, A, l, m)))(ll, masks),
                 lambda f: jax.vmap(lambda l: tuple(f(pi, A, l, None)))(ll),
                 lambda f: jax.vmap(lambda l: tuple(f(pi, A, l, masks[0])))(ll),
                 lambda f: jax.vmap(lambda a, l: tuple(f(pi, a, l, None)))(models, ll[:2])]
        cases = jax.jit(lambda: [(case(lambda p, a, l, m: tm.smoother(p, a, l, mask=m)), case(reference))
                                 for case in (cases if all_cases else cases[:1])])()
        for got, want in cases:
            for g, w in zip(got, want):
                assert not np.any(np.isnan(np.asarray(g)))
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
        assert float(cases[0][0][0][0]) == -np.inf
        if not all_cases:
            continue
        fast = jax.jit(jax.grad(lambda l: jnp.sum(jax.vmap(lambda x: tm.smoother(pi, A, x).log_evidence)(l)[1:])))(ll)
        slow = jax.jit(jax.grad(lambda l: jnp.sum(jax.vmap(lambda x: reference(pi, A, x, None)[0])(l)[1:])))(ll)
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


def test_batch_minor_filter_matches_the_per_sequence_pass():
    """`tm.filter` vmapped with one model runs the batch-minor forward pass; it gives the per-sequence pass's
    log-evidence, filtered rows (zero at masked steps) and log normalisers, with gaps in the masks, an empty
    sequence, an impossible step and K = 12; its gradient is the per-sequence pass's. (The reference is the
    same filter with the transition given per step, which always takes the per-sequence pass.)"""
    rng = np.random.default_rng(9)
    for K, T, B in ((3, 8, 5), (12, 4, 3)):
        pi, A, _ = random_hmm(rng, K, 2)
        pi, A = jnp.asarray(pi), jnp.asarray(A)
        ll = rng.normal(size=(B, T, K)).astype(np.float32)
        ll[0, 2] = -np.inf
        ll = jnp.asarray(ll)
        masks = jnp.asarray(rng.random((B, T)) > 0.3).at[1].set(False).at[0, 2].set(True)

        def reference(l, m):
            return tuple(tm.filter(pi, jnp.broadcast_to(A, (T - 1, K, K)), l, mask=m))

        got, want = jax.jit(lambda: (jax.vmap(lambda l, m: tuple(tm.filter(pi, A, l, mask=m)))(ll, masks),
                                     jax.vmap(reference)(ll, masks)))()
        for g, w in zip(got, want):
            assert not np.any(np.isnan(np.asarray(g)))
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
        assert float(got[0][0]) == -np.inf
    fast = jax.jit(jax.grad(lambda l: jnp.sum(jax.vmap(lambda x: tm.filter(pi, A, x).log_evidence)(l))))(ll[1:])
    slow = jax.jit(jax.grad(lambda l: jnp.sum(jax.vmap(
        lambda x: reference(x, jnp.ones(T, bool))[0])(l))))(ll[1:])
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


def test_batch_minor_viterbi_gradient_is_the_path_score_gradient():
    """jax.grad of the best path's log-probability (plain, vmapped, and with gaps in the mask) equals the
    gradient through the per-sequence back-pointer pass (``unroll=1``), with respect to all three inputs."""
    rng = np.random.default_rng(11)
    K, T, B = 3, 8, 4
    pi, A, _ = random_hmm(rng, K, 2)
    pi, A = jnp.asarray(pi), jnp.asarray(A)
    ll = jnp.asarray(rng.normal(size=(B, T, K)).astype(np.float32))
    masks = jnp.asarray(rng.random((B, T)) > 0.3).at[1, 0].set(False)

    def total(p, a, l, **kw):
        return jnp.sum(jax.vmap(lambda x, m: tm.viterbi(p, a, x, mask=m, **kw).log_prob)(l, masks))

    fast = jax.jit(jax.grad(total, argnums=(0, 1, 2)))(pi, A, ll)
    slow = jax.jit(jax.grad(lambda *a: total(*a, unroll=1), argnums=(0, 1, 2)))(pi, A, ll)
    for f, s in zip(fast, slow):
        np.testing.assert_allclose(f, s, rtol=1e-5, atol=1e-6)
    one = jax.jit(jax.grad(lambda p, a, x: tm.viterbi(p, a, x).log_prob, argnums=(0, 1, 2)))(pi, A, ll[0])
    ref = jax.jit(jax.grad(lambda p, a, x: tm.viterbi(p, a, x, unroll=1).log_prob, argnums=(0, 1, 2)))(pi, A, ll[0])
    for f, s in zip(one, ref):
        np.testing.assert_allclose(f, s, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(one[2]).sum()) == T  # one-hot rows: d log_prob / d log_lik picks the path


def test_jit_vmap_and_plain_agree():
    rng = np.random.default_rng(3)
    pi, A, _ = random_hmm(rng, 3, 2)
    lls = rng.normal(size=(5, 9, 3)).astype(np.float32)
    batched = jax.jit(jax.vmap(tm.smoother, in_axes=(None, None, 0)))(pi, A, lls)
    for b in range(5):
        plain = tm.smoother(pi, A, lls[b])
        np.testing.assert_allclose(batched.marginals[b], plain.marginals, atol=1e-6)
        np.testing.assert_allclose(batched.log_evidence[b], plain.log_evidence, rtol=1e-6)


def test_gradient_of_log_evidence_gives_marginals():
    """d log p(x) / d log_lik[t, k] = p(z_t = k | x): a check through autodiff of the forward pass."""
    rng = np.random.default_rng(4)
    pi, A, ll = random_hmm(rng, 3, 7)
    g = jax.grad(lambda l: tm.filter(pi, A, l).log_evidence)(jnp.asarray(ll))
    np.testing.assert_allclose(g, tm.smoother(pi, A, ll).marginals, atol=1e-5)


def test_sample_posterior_matches_path_posterior():
    rng = np.random.default_rng(5)
    pi, A, ll = random_hmm(rng, 2, 4)
    mask = np.array([1, 1, 1, 0], bool)
    bf = brute_force(pi, A, ll, mask)
    keys = jax.random.split(jax.random.key(0), 20000)
    draws = jax.jit(jax.vmap(lambda k: tm.sample_posterior(k, pi, A, ll, mask=jnp.asarray(mask))))(keys)
    draws = np.asarray(draws)
    assert np.all(draws[:, 3] == -1)
    codes = draws[:, 0] * 4 + draws[:, 1] * 2 + draws[:, 2]
    freq = np.bincount(codes, minlength=8) / len(codes)
    exact = np.zeros(8)
    for path, p in zip(bf["paths"], bf["posterior"]):
        exact[path[0] * 4 + path[1] * 2 + path[2]] += p
    np.testing.assert_allclose(freq, exact, atol=0.015)


def test_sample_from_model_statistics():
    pi = jnp.array([0.2, 0.8])
    A = jnp.array([[0.9, 0.1], [0.3, 0.7]])
    keys = jax.random.split(jax.random.key(1), 3000)
    states, obs = jax.vmap(
        lambda k: tm.sample(k, pi, A, 20, lambda kk, z: z + 10 * jax.random.bernoulli(kk, 0.0)))(keys)
    without = jax.vmap(lambda k: tm.sample(k, pi, A, 20))(keys)
    assert without.observations is None
    np.testing.assert_array_equal(without.states, states)  # the same key draws the same states
    states = np.asarray(states)
    np.testing.assert_array_equal(np.asarray(obs), states)
    np.testing.assert_allclose(np.mean(states[:, 0] == 1), 0.8, atol=0.03)
    prev, nxt = states[:, :-1].ravel(), states[:, 1:].ravel()
    np.testing.assert_allclose(np.mean(nxt[prev == 0] == 1), 0.1, atol=0.01)
    np.testing.assert_allclose(np.mean(nxt[prev == 1] == 0), 0.3, atol=0.015)


def test_shape_errors_name_the_argument():
    pi, A, ll = jnp.ones(3) / 3, jnp.eye(3), jnp.zeros((5, 3))
    with pytest.raises(ValueError, match="initial"):
        tm.smoother(jnp.ones(2) / 2, A, ll)
    with pytest.raises(ValueError, match="transition"):
        jax.jit(tm.viterbi)(pi, jnp.eye(4), ll)
    with pytest.raises(ValueError, match="transition"):
        tm.filter(pi, jnp.ones((3, 3, 3)), ll)
    with pytest.raises(ValueError, match="log_lik"):
        tm.smoother(pi, A, jnp.zeros(5))
    with pytest.raises(ValueError, match="mask"):
        tm.smoother(pi, A, ll, mask=jnp.ones(4, bool))


def test_float32_long_sequence_stability():
    """T = 100,000 and K = 100: the float32 log-evidence stays within 1e-2 nats of float64."""
    rng = np.random.default_rng(6)
    K, T = 100, 100_000
    pi = rng.dirichlet(np.ones(K)).astype(np.float32)
    A = (0.9 * np.eye(K) + 0.1 * rng.dirichlet(np.ones(K), size=K)).astype(np.float32)
    A /= A.sum(1, keepdims=True)
    ll = (-1.0 + 0.5 * rng.normal(size=(T, K))).astype(np.float32)
    exact = float64_log_evidence(pi, A, ll)
    got = jax.jit(tm.filter)(pi, A, ll).log_evidence
    assert abs(float(got) - exact) < 1e-2, (float(got), exact)
    post = jax.jit(tm.smoother)(pi, A, ll)
    assert abs(float(post.log_evidence) - exact) < 1e-2
    np.testing.assert_allclose(np.asarray(post.marginals).sum(1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(np.asarray(post.marginals)))


def test_dynamax_smoother_agrees():
    from dynamax.hidden_markov_model import hmm_smoother, hmm_posterior_mode

    rng = np.random.default_rng(7)
    pi, A, ll = random_hmm(rng, 6, 50)
    ref = hmm_smoother(pi, A, ll)
    ours = tm.smoother(pi, A, ll)
    np.testing.assert_allclose(ours.marginals, ref.smoothed_probs, atol=1e-5)
    np.testing.assert_allclose(ours.log_evidence, ref.marginal_loglik, rtol=1e-5)
    np.testing.assert_allclose(tm.expected_counts(pi, A, ll).transitions, ref.trans_probs, atol=1e-4)
    np.testing.assert_array_equal(tm.viterbi(pi, A, ll).states, hmm_posterior_mode(pi, A, ll))


def test_impossible_evidence_is_flagged_not_nan():
    pi = jnp.array([1.0, 0.0])
    A = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    ll = jnp.log(jnp.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]))  # step 1 needs state 1, unreachable
    post = tm.smoother(pi, A, ll)
    assert post.log_evidence == -jnp.inf
    assert np.all(np.isfinite(np.asarray(post.marginals)))
    assert tm.filter(pi, A, ll).log_evidence == -jnp.inf


def test_wide_viterbi_matches_dynamax():
    """K >= 32 takes the min-reduction backpointer path."""
    from dynamax.hidden_markov_model import hmm_posterior_mode

    rng = np.random.default_rng(8)
    pi, A, ll = random_hmm(rng, 40, 30)
    path = jax.jit(tm.viterbi)(pi, A, ll)
    np.testing.assert_array_equal(path.states, hmm_posterior_mode(pi, A, ll))
    z = np.asarray(path.states)
    joint = np.log(pi[z[0]]) + np.sum(np.log(A[z[:-1], z[1:]])) + np.sum(ll[np.arange(30), z])
    np.testing.assert_allclose(path.log_prob, joint, rtol=1e-5)


@pytest.mark.parametrize("K", [5, 40])  # 40: the CDF as a matrix product
def test_sample_posterior_batch_minor_equals_per_sequence(K):
    """Under vmap over keys and sequences (masks with gaps) the batch-minor sampler draws what the
    per-sequence one draws from the same keys; a vmap over keys alone, over models, an invalid model
    (-1 everywhere) and a derivative through a function that samples all run."""
    rng = np.random.default_rng(21)
    T, B = 60, 9
    pi, A, _ = random_hmm(rng, K, T)
    ll = rng.normal(size=(B, T, K)).astype(np.float32)
    mask = rng.random((B, T)) < 0.85
    mask[3] = False  # an empty sequence
    keys = jax.random.split(jax.random.key(3), B)
    f = jax.jit(jax.vmap(lambda k, l, m: tm.sample_posterior(k, pi, A, l, mask=m)))
    batch = np.asarray(f(keys, ll, mask))
    loop = np.stack([np.asarray(tm.sample_posterior(keys[b], pi, A, ll[b], mask=mask[b])) for b in range(B)])
    assert (batch == loop).mean() >= 0.99  # equal draws but where float32 rounding moves a CDF boundary
    assert np.all(batch[~mask] == -1) and np.all(batch[mask] >= 0)
    over_keys = jax.vmap(lambda k: tm.sample_posterior(k, pi, A, ll[0]))(keys)
    assert over_keys.shape == (B, T)
    np.testing.assert_array_equal(over_keys[0], tm.sample_posterior(keys[0], pi, A, ll[0]))
    models = jax.vmap(lambda k, a: tm.sample_posterior(k, pi, a, ll[0]))(keys[:2], jnp.stack([A, A]))
    np.testing.assert_array_equal(models[0], tm.sample_posterior(keys[0], pi, A, ll[0]))
    bad = jax.jit(jax.vmap(lambda k, l: tm.sample_posterior(k, pi, A * 2.0, l)))(keys, ll)
    assert np.all(np.asarray(bad) == -1)
    g = jax.grad(lambda l: jnp.sum(tm.smoother(pi, A, l).marginals[jnp.arange(T), tm.sample_posterior(
        keys[0], pi, A, l)]))(jnp.asarray(ll[0]))
    assert np.all(np.isfinite(g))
