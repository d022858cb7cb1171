"""One process of the two-process gm.parallel check (started twice by test_multihost.py).

    XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu \\
        python tests/parallel/multihost.py --coordinator 127.0.0.1:PORT --num-processes 2 --process-id I

Each process sees 2 CPU devices; after `jax.distributed.initialize` the mesh spans all 4. Both processes
build the same global inputs, run the sharded computations (CPU collectives across processes go through
gloo, JAX's default), gather the results with `gm.parallel.to_host` and print them as JSON; the test
compares them with a single-process run of the same functions.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax
import numpy as np

from gm import parallel


def inputs():
    """The global inputs, identical in every process (and in the test's single-process reference)."""
    from gm import bn
    from gm.data.networks import load_network

    net = load_network("asia")
    x = np.asarray(bn.sample(jax.random.key(0), net, 10))
    observed = np.asarray(jax.random.uniform(jax.random.key(1), x.shape)) < 0.3
    evs = np.where(observed, x, -1).astype(np.int32)
    rng = np.random.default_rng(0)
    K, V, B, T = 3, 4, 6, 10
    hmm = dict(
        initial=rng.dirichlet(np.ones(K)).astype(np.float32),
        transition=(0.6 * np.eye(K) + 0.4 * rng.dirichlet(np.ones(K), size=K)).astype(np.float32),
        emission=rng.dirichlet(np.ones(V), size=K).astype(np.float32),
        obs=rng.integers(0, V, size=(B, T)).astype(np.int32),
        mask=np.arange(T)[None, :] < rng.integers(3, T + 1, size=B)[:, None],
        num_symbols=V,
    )
    return net, evs, hmm


def compute(mesh, *, training: bool = False):
    """The sharded computations, as NumPy dicts (gathered from every process); ``training`` adds two
    data-parallel VAE steps."""
    from gm import bn
    from gm import temporal as tm

    net, evs, h = inputs()
    marg = parallel.sharded_marginals(net, evs[:8], mesh=mesh)             # 8 sets on 4 devices
    # per-process data: each process contributes its own 4 rows (its 2 devices); the global batch is the
    # processes' rows in process order, the same 8 sets as above
    mine = np.array_split(evs[:8], jax.process_count())[jax.process_index()]
    local = parallel.sharded_marginals(net, parallel.shard_local_batch(mine, mesh), mesh=mesh)
    counts = parallel.sharded_sum(bn.marginals, mesh, in_axes=(None, 0))(net, evs)  # 10 sets, padded to 12
    fam = tm.Categorical(h["num_symbols"])
    params = tm.HMM(h["initial"], h["transition"], tm.CategoricalParams(h["emission"]))
    new, log_lik = parallel.sharded_em_step(fam, params, h["obs"], mask=h["mask"], mesh=mesh)
    host = {}
    if training:  # two data-parallel VAE steps on a global batch of 8 digits (2 per device)
        from gm import data
        from gm.deep import vae

        images = np.asarray(data.digits().train.images[:16])
        config = vae.VAEConfig(latent_dim=2, hidden=(16,), learning_rate=1e-2, image_shape=images.shape[1:])
        state = vae.create_state(jax.random.key(0), config, {"image": images[:8]})
        step = parallel.data_parallel_train_step(vae.train_step, mesh, batch_argnums=3)
        for i in range(2):
            key = jax.random.fold_in(jax.random.key(1), i)
            state, _ = step(key, config, state, {"image": images[8 * i:8 * (i + 1)]})
        host["vae_params"] = {"/".join(str(k.key) for k in path): leaf
                              for path, leaf in jax.tree_util.tree_leaves_with_path(state.params)}
    host = parallel.to_host({**host, "marginals": marg, "marginals_local_data": local, "counts": counts,
                             "em_transition": new.transition, "em_emission": new.emission.probs,
                             "em_log_lik": log_lik})
    facts = {"marginals_spec": str(marg[net.names[0]].sharding.spec),
             "marginals_devices": len(marg[net.names[0]].sharding.device_set),
             "marginals_addressable_shards": len(marg[net.names[0]].addressable_shards)}
    return host, facts


def main(argv=None):
    parser = parallel.add_distributed_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--training", action="store_true", help="also two data-parallel VAE training steps")
    args = parser.parse_args(argv)
    distributed = parallel.initialize_from_args(args)
    mesh = parallel.batch_mesh()
    host, facts = compute(mesh, training=args.training)
    result = {"process_index": jax.process_index(), "process_count": jax.process_count(),
              "distributed": distributed, "device_count": jax.device_count(),
              "local_device_count": jax.local_device_count(), "mesh_size": mesh.size, **facts,
              "values": {k: np.asarray(v).tolist() if not isinstance(v, dict) else
                         {n: np.asarray(a).tolist() for n, a in v.items()} for k, v in host.items()}}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
