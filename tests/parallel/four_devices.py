"""Checks of gm.parallel on 4 simulated CPU devices; prints one JSON object (read by test_sharding.py).

Run with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` in the environment (the test sets it):
JAX fixes its device count when its backend starts, so these checks live in their own process.
Every number printed is a discrepancy between a sharded result and the same computation on one device,
or a fact about shardings; the test decides what passes.
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np


def max_diff(a, b) -> float:
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) if np.size(x) else 0.0
               for x, y in zip(leaves_a, leaves_b))


def sharding_facts(x) -> dict:
    spec = getattr(x.sharding, "spec", None)
    return {"spec": str(spec), "devices": len(x.sharding.device_set),
            "shard_rows": sorted({s.data.shape[0] if s.data.ndim else 0 for s in x.addressable_shards}),
            "replicated": bool(x.sharding.is_fully_replicated), "rows": int(x.shape[0]) if x.ndim else 0}


def big_cpt_check(mesh) -> float:
    from gm import bn, parallel

    rng = np.random.default_rng(0)
    k = 10

    def table(shape):
        t = rng.random(shape) + 0.1
        return (t / t.sum(-1, keepdims=True)).tolist()

    parents = {"B": ["A"], "C": ["A", "B"], "D": ["A", "B", "C"], "E": ["D"]}
    cpts = {"A": table((k,)), "B": table((k, k)), "C": table((k, k, k)), "D": table((k,) * 4), "E": table((k, k))}
    net = bn.BayesNet.from_dict({n: [f"s{i}" for i in range(k)] for n in "ABCDE"}, parents, cpts)
    x = np.asarray(bn.sample(jax.random.key(0), net, 8))
    evs = np.where(np.asarray(jax.random.uniform(jax.random.key(1), x.shape)) < 0.3, x, -1).astype(np.int32)
    single = jax.jit(jax.vmap(bn.marginals, in_axes=(None, 0)))(net, evs)
    marginals_diff = max_diff(parallel.sharded_marginals(net, evs, mesh=mesh), single)
    # the gradient of the total log-evidence with respect to the (replicated) CPTs, sharded against one device
    from jax.sharding import NamedSharding, PartitionSpec as P

    def total(cpts, e):
        return jnp.sum(jax.vmap(bn.log_evidence, in_axes=(None, 0))(net.replace(cpts=cpts), e))

    axis = mesh.axis_names[0]
    local = jax.shard_map(lambda c, e: jax.lax.psum(total(c, e), axis), mesh=mesh, in_specs=(P(), P(axis)), out_specs=P())
    cpts = jax.device_put(list(net.cpts), NamedSharding(mesh, P()))
    sharded = jax.jit(jax.grad(local))(cpts, jax.device_put(evs, NamedSharding(mesh, P(axis))))
    single_grad = jax.grad(total)(list(net.cpts), evs)
    scale = max(float(np.max(np.abs(np.asarray(g)))) for g in single_grad)
    return marginals_diff, max_diff(sharded, single_grad) / scale


def bn_checks(out: dict, mesh):
    from gm import bn, parallel
    from gm.data.networks import load_network

    net = load_network("asia")
    key = jax.random.key(0)
    x = np.asarray(bn.sample(key, net, 10))
    observed = np.asarray(jax.random.uniform(jax.random.key(1), x.shape)) < 0.3
    evs = np.where(observed, x, -1).astype(np.int32)
    # B = 8 (a multiple of 4): the outputs are the sharded arrays themselves
    single_marg = jax.jit(jax.vmap(bn.marginals, in_axes=(None, 0)))(net, evs[:8])
    marg = parallel.sharded_marginals(net, evs[:8], mesh=mesh)
    out["bn_marginals_diff"] = max_diff(marg, single_marg)
    out["bn_marginals_sharding"] = sharding_facts(marg[net.names[0]])
    # B = 10: padded to 12 with copies of the last set, unpadded after
    single_logz = jax.jit(jax.vmap(bn.log_evidence, in_axes=(None, 0)))(net, evs)
    logz = parallel.sharded_log_evidence(net, evs, mesh=mesh)
    out["bn_log_evidence_padded_diff"] = max_diff(logz, single_logz)
    out["bn_log_evidence_rows"] = int(logz.shape[0])
    # chunked per device, with padding: 10 sets -> 16 = 4 devices x 2 chunks of 2
    chunked = parallel.sharded_log_evidence(net, evs, mesh=mesh, chunk_size=2)
    out["bn_log_evidence_chunked_diff"] = max_diff(chunked, single_logz)
    out["bn_log_evidence_chunked_rows"] = int(chunked.shape[0])
    # a CPT large enough to enter a matrix product of the unrolled engine unbatched (10^4 entries, the
    # evidence kept apart): its reverse pass is a custom VJP, whose cotangent for the replicated CPT must be
    # summed over the devices (once a ValueError about manual axis types under shard_map; a sum missing or
    # repeated would scale the CPTs' gradient by the device count)
    out["bn_marginals_big_cpt_diff"], out["bn_cpt_grad_big_cpt_rel_diff"] = big_cpt_check(mesh)
    # sharded_sum: expected state counts over evidence sets (the sum of their marginals)
    total = parallel.sharded_sum(bn.marginals, mesh, in_axes=(None, 0))(net, evs[:8])
    out["sharded_sum_diff"] = max_diff(total, jax.tree_util.tree_map(lambda a: a.sum(0), single_marg))
    out["sharded_sum_sharding"] = sharding_facts(total[net.names[0]])
    # gm.learn counts over 10 records with missing values and weights (padded to 12 with weight 0)
    from gm import learn

    weights = np.linspace(0.5, 2.0, 10).astype(np.float32)
    counts = parallel.sharded_family_counts(net, evs, weights=weights, mesh=mesh)
    out["learn_counts_diff"] = max_diff(counts, learn.family_counts(net, evs, weights=weights))
    out["learn_counts_sharding"] = sharding_facts(counts[0])


def per_set_checks(out: dict, mesh):
    """Functions whose loops start from constants, or that differentiate with respect to replicated
    parameters, under `parallel.sharded_map` against `jax.vmap` on one device. Inside jax.shard_map the
    first raised a TypeError (a scan carry that became device-varying) and the second summed each
    sequence's counts with the counts of the sequences at the same position on the other devices."""
    from gm import bn, parallel
    from gm.data.networks import load_network
    from gm.temporal import dbn

    def compare(fn, *args):
        single = jax.jit(jax.vmap(fn))(*args)
        return max_diff(parallel.sharded_map(fn, mesh, in_axes=0)(*args), single)

    net = load_network("asia")
    x = np.asarray(bn.sample(jax.random.key(2), net, 8))
    evs = jnp.asarray(np.where(np.asarray(jax.random.uniform(jax.random.key(3), x.shape)) < 0.3, x, -1), jnp.int32)
    keys = jax.random.split(jax.random.key(4), 8)
    out["bn_mpe_program_diff"] = compare(lambda e: bn.mpe(net, e, method="program"), evs)
    out["bn_sample_diff"] = compare(lambda k: bn.sample(k, net, 16), keys)
    out["bn_likelihood_weighting_diff"] = compare(lambda k: bn.likelihood_weighting(k, net, evs[0], 16).samples, keys)

    rng = np.random.default_rng(5)

    def dist(*shape):
        t = rng.random(shape) + 0.1
        return t / t.sum(-1, keepdims=True)

    # gm.learn's expected counts of each device's records, summed with psum, against one device
    from jax.sharding import NamedSharding, PartitionSpec as P
    from gm import learn

    axis = mesh.axis_names[0]
    local = jax.shard_map(lambda d: jax.tree.map(lambda a: jax.lax.psum(a, axis), learn.expected_counts(net, d)),
                          mesh=mesh, in_specs=P(axis), out_specs=P())
    out["learn_expected_counts_shard_map_diff"] = max_diff(
        jax.jit(local)(jax.device_put(evs, NamedSharding(mesh, P(axis)))), learn.expected_counts(net, evs))

    model = dbn.factorial_hmm([dist(3), dist(2)], [dist(3, 3), dist(2, 2)], dist(3, 2, 4))
    ev = np.full((8, 12, 3), -1, np.int32)
    ev[:, :, 2] = rng.integers(0, 4, size=(8, 12))
    out["dbn_expected_counts_diff"] = compare(lambda e: dbn.expected_counts(model, e), jnp.asarray(ev))


def temporal_checks(out: dict, mesh):
    from gm import parallel
    from gm import temporal as tm

    rng = np.random.default_rng(0)
    K, V, B, T = 3, 5, 8, 12
    pi = jnp.asarray(rng.dirichlet(np.ones(K)), jnp.float32)
    A = jnp.asarray(0.6 * np.eye(K) + 0.4 * rng.dirichlet(np.ones(K), size=K), jnp.float32)
    E = jnp.asarray(rng.dirichlet(np.ones(V), size=K), jnp.float32)
    obs = jnp.asarray(rng.integers(0, V, size=(B, T)), jnp.int32)
    lengths = rng.integers(4, T + 1, size=B)
    mask = jnp.asarray(np.arange(T)[None, :] < lengths[:, None])
    from gm import learn

    fam = tm.Categorical(V)
    params = tm.HMM(pi, A, tm.CategoricalParams(E))
    log_liks = jax.vmap(lambda o: fam.log_likelihood(params.emission, o))(obs)

    single = jax.jit(jax.vmap(lambda ll, m: tm.smoother(pi, A, ll, mask=m)))(log_liks, mask)
    sharded = parallel.sharded_smoother(pi, A, log_liks, mask=mask, mesh=mesh)
    out["smoother_diff"] = max_diff(sharded, single)
    out["smoother_sharding"] = sharding_facts(sharded.marginals)

    # B = 7 with masks (padded with one fully masked sequence); B = 8 without
    for name, o, m in (("masked", obs[:7], mask[:7]), ("unmasked", obs, None)):
        ref = learn.hmm.em_step(fam, params, o, mask=m)
        got = parallel.sharded_em_step(fam, params, o, mask=m, mesh=mesh)
        out[f"em_step_{name}_params_diff"] = max_diff(got.model, ref.model)
        out[f"em_step_{name}_rel_loglik_diff"] = float(abs(got.log_likelihood - ref.log_likelihood)
                                                       / abs(ref.log_likelihood))
        # the updated models' log priors (the objective's other term; EMStep folds it into log_likelihood)
        out[f"em_step_{name}_log_prior_diff"] = float(abs(learn.hmm.log_prior(fam, got.model)
                                                          - learn.hmm.log_prior(fam, ref.model)))
    out["em_step_params_sharding"] = sharding_facts(got.model.transition)
    fitted, hist, _ = parallel.sharded_fit(fam, params, obs[:7], mask=mask[:7], mesh=mesh, num_iters=5)
    ref_fitted, ref_hist, _ = learn.hmm.fit(fam, params, obs[:7], mask=mask[:7], num_iters=5)
    out["em_fit_diff"] = max_diff(fitted, ref_fitted)
    out["em_fit_history_rel_diff"] = float(np.max(np.abs(np.asarray(hist) - np.asarray(ref_hist))
                                                  / np.abs(np.asarray(ref_hist))))
    shard_map_checks(out, mesh, pi, A, log_liks, mask, fam, params, obs)

    # the compiled sharded E-step reduces across devices: XLA inserted the collective
    from gm.parallel import batch_sharding, replicate
    from gm.parallel.sequences import compiled_em_step

    ob, mk = obs, mask
    flat = learn.hmm.resolve_prior(K).concentrations
    text = compiled_em_step(fam, mesh).lower(replicate(params, mesh), jax.device_put(ob, batch_sharding(mesh)),
                                              jax.device_put(mk, batch_sharding(mesh)),
                                              replicate(flat, mesh)).compile().as_text()
    out["em_step_hlo_all_reduce"] = "all-reduce" in text


def shard_map_checks(out: dict, mesh, pi, A, log_liks, mask, fam, params, obs):
    """Every gm.temporal pass written by a user inside ``jax.shard_map`` (their loops start from constant
    carries, which must take the sharded evidence's varying axes) against the same vmap on one device;
    and the DBN smoother (the factorial fast path and the general engine) through ``sharded_map``."""
    from jax.sharding import PartitionSpec as P

    from gm import parallel
    from gm import temporal as tm
    from gm.temporal import dbn

    B = obs.shape[0]
    keys = jax.random.split(jax.random.key(5), B)
    fns = {
        "filter": lambda ll, m, o, k: tm.filter(pi, A, ll, mask=m),
        "smoother": lambda ll, m, o, k: tm.smoother(pi, A, ll, mask=m),
        "expected_counts": lambda ll, m, o, k: tm.expected_counts(pi, A, ll, mask=m),
        "viterbi": lambda ll, m, o, k: tm.viterbi(pi, A, ll, mask=m),
        "sample_posterior": lambda ll, m, o, k: tm.sample_posterior(k, pi, A, ll, mask=m),
        "posterior": lambda ll, m, o, k: tm.posterior(fam, params, o, mask=m),
    }
    args = (log_liks, mask, obs, keys)
    for name, fn in fns.items():
        single = jax.jit(jax.vmap(fn))(*args)
        inside = jax.jit(jax.shard_map(jax.vmap(fn), mesh=mesh, in_specs=P("batch"), out_specs=P("batch")))(*args)
        out[f"shard_map_{name}_diff"] = max_diff(inside, single)

    rng = np.random.default_rng(3)
    K, V, T = 3, 4, 10
    fact = dbn.factorial_hmm([rng.dirichlet(np.ones(K)) for _ in range(2)],
                             [rng.dirichlet(np.ones(K), size=K) for _ in range(2)],
                             rng.dirichlet(np.ones(V), size=(K, K)))
    zipper = dbn.boltzmann_zipper(rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), size=K),
                                  rng.dirichlet(np.ones(V), size=K), rng.dirichlet(np.ones(K), size=K),
                                  rng.dirichlet(np.ones(K), size=(K, K)), rng.dirichlet(np.ones(V), size=K))
    for name, model in (("factorial", fact), ("zipper", zipper)):
        ev = jax.vmap(lambda k: dbn.sample(k, model, T))(jax.random.split(jax.random.key(6), 6))
        ev = jnp.where(jax.random.uniform(jax.random.key(7), ev.shape) < 0.3, -1, ev)  # B = 6: padded to 8

        def one(m, e):
            post = dbn.smoother(m, e)
            return post.log_evidence, post.marginals

        single = jax.jit(jax.vmap(one, in_axes=(None, 0)))(model, ev)
        sharded = parallel.sharded_map(one, mesh, in_axes=(None, 0))(model, ev)
        out[f"sharded_dbn_{name}_diff"] = max_diff(sharded, single)


def training_checks(out: dict, mesh):
    from gm import data, parallel
    from gm.deep import vae

    images = jnp.asarray(data.digits().train.images[:64])
    config = vae.VAEConfig(latent_dim=4, hidden=(32,), learning_rate=1e-2, image_shape=tuple(images.shape[1:]))
    state0 = vae.create_state(jax.random.key(0), config, {"image": images[:32]})
    step = parallel.data_parallel_train_step(vae.train_step, mesh, batch_argnums=3)
    # the importance-weighted bound (a lax.scan over chunks of samples) inside a user's shard_map: each
    # device's rows with the same key, against the same call on each quarter of the batch on one device
    from jax.sharding import PartitionSpec as P

    bound_key = jax.random.key(9)

    def bound(x):
        return vae.iwae_bound(bound_key, config, state0.params, x, num_samples=8, chunk_size=4)

    inside = jax.jit(jax.shard_map(bound, mesh=mesh, in_specs=P("batch"), out_specs=P("batch")))(images[:16])
    quarters = jnp.concatenate([bound(images[i:i + 4]) for i in range(0, 16, 4)])
    out["shard_map_iwae_diff"] = max_diff(inside, quarters)
    single, sharded = state0, state0
    for i in range(3):
        batch = {"image": images[i * 16:(i + 1) * 16]}  # global batch 16 = 4 per device
        key = jax.random.fold_in(jax.random.key(1), i)
        single, m_single = vae.train_step(key, config, single, batch)
        sharded, m_sharded = step(key, config, sharded, batch)
    out["train_params_diff"] = max_diff(sharded.params, single.params)
    out["train_params_scale"] = max(float(np.max(np.abs(np.asarray(p))))
                                    for p in jax.tree_util.tree_leaves(single.params))
    out["train_params_moved"] = max_diff(single.params, state0.params)
    out["train_metrics_diff"] = max_diff(m_sharded, m_single)
    leaf = jax.tree_util.tree_leaves(sharded.params)[0]
    out["train_params_sharding"] = sharding_facts(leaf)
    out["train_step_count"] = int(sharded.step)
    from experiments import vae_mnist

    out["vae_mnist_step_is_data_parallel"] = vae_mnist.train_step_for(100) is not vae.train_step
    # the GAN's alternating step (D then G), data-parallel, as experiments/gan_mnist runs it
    from gm.deep import gan

    gcfg = gan.GANConfig(model="gan", latent_dim=4, generator_hidden=(16,), discriminator_hidden=(16,),
                         image_shape=tuple(images.shape[1:]))
    gstate0 = gan.create_state(jax.random.key(3), gcfg, {"image": images[:16]})
    gstep = parallel.data_parallel_over_devices(gan.train_step, 16, batch_argnums=3)
    g_single, g_sharded = gstate0, gstate0
    for i in range(2):
        batch = {"image": images[i * 16:(i + 1) * 16], "label": jnp.zeros(16, jnp.int32)}
        key = jax.random.fold_in(jax.random.key(4), i)
        g_single, _ = gan.train_step(key, gcfg, g_single, batch)
        g_sharded, _ = gstep(key, gcfg, g_sharded, batch)
    out["gan_params_diff"] = max_diff(g_sharded, g_single)
    out["gan_params_moved"] = max_diff(g_single, gstate0)
    out["gan_step_is_data_parallel"] = gstep is not gan.train_step
    try:
        step(jax.random.key(2), config, sharded, {"image": images[:10]})
        out["train_bad_batch_raises"] = False
    except ValueError as e:
        out["train_bad_batch_raises"] = "multiple" in str(e)


def main():
    from gm import parallel

    out = {"device_count": jax.device_count(), "backend": jax.default_backend()}
    mesh = parallel.batch_mesh()
    out["mesh_size"] = mesh.size
    for checks in (bn_checks, per_set_checks, temporal_checks, training_checks):
        checks(out, mesh)
    print("RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
