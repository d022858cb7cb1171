"""Training utilities: the optimiser cache that lets equal configs share compiled steps."""

import jax
import numpy as np

from gm.deep import train, vae


def test_make_optimizer_returns_one_object_per_setting():
    a = train.make_optimizer(1e-3, b1=0.5)
    assert train.make_optimizer(0.001, b1=0.5, b2=0.999) is a  # equal settings, same object
    assert train.make_optimizer(2e-3, b1=0.5) is not a
    assert train.make_optimizer(1e-3, b1=0.5, grad_clip=1.0) is not a


def test_equal_vae_configs_give_states_of_one_pytree_structure():
    """jit keys its cache on the argument's tree structure, static fields (optimiser, config) included: equal
    structures mean the second state reuses the first one's compiled ``vae.train_step`` (the GAN tests check
    the jit cache size itself)."""
    images = np.random.default_rng(0).uniform(size=(8, 8, 8, 1)).astype(np.float32)
    config = vae.VAEConfig(latent_dim=2, hidden=(8,), grad_clip=1.0, schedule="cosine", total_steps=10)
    first = vae.create_state(jax.random.key(0), config, {"image": images})
    second = vae.create_state(jax.random.key(1), config, {"image": images})  # a fresh state, equal config
    assert first.tx is second.tx
    assert jax.tree.structure(first) == jax.tree.structure(second)
