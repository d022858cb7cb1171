"""Training utilities: the optimiser cache that lets equal configs share compiled steps, schedules, early
stopping, static configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import train, vae


def test_make_optimizer_returns_one_object_per_setting():
    a = train.make_optimizer(1e-3, b1=0.5)
    assert train.make_optimizer(0.001, b1=0.5, b2=0.999) is a  # equal settings, same object
    assert train.make_optimizer(2e-3, b1=0.5) is not a
    assert train.make_optimizer(1e-3, b1=0.5, grad_clip=1.0) is not a


def test_equal_vae_configs_give_states_of_one_pytree_structure():
    """jit keys its cache on the argument's tree structure, static fields (the optimiser) included: equal
    structures mean the second state reuses the first one's compiled ``vae.train_step`` (the GAN tests check
    the jit cache size itself)."""
    images = np.random.default_rng(0).uniform(size=(8, 8, 8, 1)).astype(np.float32)
    config = vae.VAEConfig(latent_dim=2, hidden=(8,), grad_clip=1.0, schedule="cosine", total_steps=10,
                           image_shape=(8, 8, 1))
    first = vae.create_state(jax.random.key(0), config, {"image": images})
    second = vae.create_state(jax.random.key(1), config, {"image": images})  # a fresh state, equal config
    assert first.tx is second.tx
    assert jax.tree.structure(first) == jax.tree.structure(second)


def test_early_stopping_counts_patience():
    stop = train.EarlyStopping(patience=2, min_delta=0.5)
    assert stop.update(10.0, 0) and not stop.update(9.8, 1) and not stop.should_stop
    assert not stop.update(11.0, 2) and stop.should_stop and stop.best_epoch == 0
    again = train.EarlyStopping.from_dict(stop.to_dict())
    assert again == stop
    assert not train.EarlyStopping().update(float("nan"), 0)


def test_optimizer_schedules():
    with pytest.raises(ValueError, match="schedule"):
        train.make_optimizer(1e-3, schedule="linear")
    tx = train.make_optimizer(1e-3, schedule="cosine", total_steps=10, warmup_steps=2, weight_decay=1e-4, grad_clip=1.0)
    params = {"w": jnp.ones(3)}
    updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    assert np.all(np.isfinite(np.asarray(updates["w"])))


def test_a_static_config_is_part_of_the_tree_structure_not_a_leaf():
    config = vae.VAEConfig(latent_dim=2, hidden=(8,), image_shape=(8, 8, 1))
    assert jax.tree.leaves(config) == []
    same = vae.VAEConfig(latent_dim=2, hidden=(8,), image_shape=(8, 8, 1))
    assert jax.tree.structure(config) == jax.tree.structure(same)
    assert jax.tree.structure(config) != jax.tree.structure(vae.VAEConfig(latent_dim=3, hidden=(8,),
                                                                          image_shape=(8, 8, 1)))
    traced = jax.jit(lambda c, x: x * c.latent_dim)(config, jnp.ones(2))  # an argument of a jitted function
    np.testing.assert_array_equal(traced, [2.0, 2.0])


def test_train_step_and_loss_results_are_named_pairs():
    step = train.TrainStep("state", {"loss": 1.0})
    state, metrics = step
    assert (state, metrics) == (step.state, step.metrics)
    loss, metrics = train.LossAndMetrics(jnp.ones(()), {})
    assert float(loss) == 1.0
