"""The GAN family's config, latent inputs and networks: checks, shapes, the projection discriminator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import gan, gan_networks

IMAGE_SHAPE = (8, 8, 1)


def _tiny(model, **overrides):
    return gan_networks.GANConfig(model=model, latent_dim=4, generator_hidden=(16,), discriminator_hidden=(16,),
                                  image_shape=IMAGE_SHAPE, **overrides)


def test_config_is_checked():
    with pytest.raises(ValueError, match="model"):
        gan_networks.GANConfig(model="wgan")
    with pytest.raises(ValueError, match="loss"):
        gan_networks.GANConfig(loss="hinge")
    with pytest.raises(ValueError, match="d_steps"):
        gan_networks.GANConfig(d_steps=0)
    with pytest.raises(ValueError, match="normalization"):
        gan_networks.GANConfig(normalization="batch")  # batch norm is for the DCGAN networks
    with pytest.raises(ValueError, match="upsample"):
        gan_networks.GANConfig(architecture="dcgan", upsample="transposed")
    assert gan_networks.GANConfig(image_shape=[8, 8, 1]).image_shape == (8, 8, 1)  # hashable


@pytest.mark.parametrize("model", gan_networks.MODELS)
def test_sample_latent_fills_the_fields_of_the_model(model):
    config = _tiny(model, n_continuous=2)
    latent = gan_networks.sample_latent(jax.random.key(0), config, 5)
    assert latent.z.shape == (5, 4)
    assert (latent.labels is not None) == (model == "cgan")
    assert (latent.categorical is not None) == (model == "infogan")
    condition = gan_networks.generator_condition(config, latent)
    width = {"cgan": config.n_classes, "infogan": config.n_categories + 2}.get(model)
    assert (condition is None) if width is None else condition.shape == (5, width)
    with pytest.raises(ValueError, match="labels"):
        gan_networks.sample_latent(jax.random.key(0), _tiny("cgan"), 5, labels=jnp.zeros(4, jnp.int32))


def test_projection_discriminator_adds_the_label_embedding_inner_product():
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(size=(16, *IMAGE_SHAPE)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, 16), jnp.int32)
    config = _tiny("cgan")  # the cGAN's default discriminator is the projection one
    params = gan.create_state(jax.random.key(0), config, {"image": images, "label": labels}).discriminator.params
    out = jax.jit(gan_networks.discriminate)(config, params, images, labels=labels)
    psi = np.asarray(out.features) @ np.asarray(params["logit"]["kernel"])[:, 0] + np.asarray(params["logit"]["bias"])
    embed = np.asarray(params["label_embedding"]["embedding"])[np.asarray(labels)]
    np.testing.assert_allclose(out.logits, psi + (embed * np.asarray(out.features)).sum(-1), rtol=1e-4, atol=1e-5)
