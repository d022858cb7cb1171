"""The VAE family's config checks and the shapes of its encoder and decoder."""

import jax
import jax.numpy as jnp
import pytest

from gm.deep import vae_networks


def test_config_is_checked():
    with pytest.raises(ValueError, match="model"):
        vae_networks.VAEConfig(model="gan")
    with pytest.raises(ValueError, match="VAEConfig.encoder must be one of"):
        vae_networks.VAEConfig(encoder="resnet")
    with pytest.raises(ValueError, match="binarize"):
        vae_networks.VAEConfig(likelihood="gaussian")
    with pytest.raises(ValueError, match="latent_dim"):
        vae_networks.VAEConfig(latent_dim=0)
    config = vae_networks.VAEConfig(latent_dim=2, hidden=(8,), image_shape=[8, 8, 1])
    assert config.image_shape == (8, 8, 1)  # a tuple (hashable) whatever sequence was given
    assert hash(config) == hash(vae_networks.VAEConfig(latent_dim=2, hidden=(8,), image_shape=(8, 8, 1)))


@pytest.mark.parametrize("encoder", ["mlp", "conv"])
def test_model_maps_images_to_a_gaussian_and_latents_to_images(encoder):
    config = vae_networks.VAEConfig(model="cvae", encoder=encoder, decoder=encoder, latent_dim=3, hidden=(8,),
                                    conv_features=(4,), image_shape=(8, 8, 1), likelihood="gaussian",
                                    binarize=False)
    model = vae_networks.VAEModel(config)
    x, labels = jnp.zeros((2, 8, 8, 1)), jnp.array([1, 2])
    params = jax.jit(model.init)(jax.random.key(0), x, labels)
    mean, log_var = model.apply(params, x, labels, method=vae_networks.VAEModel.encode)
    assert mean.shape == log_var.shape == (2, 3)
    assert model.apply(params, mean, labels, method=vae_networks.VAEModel.decode).shape == (2, 8, 8, 1)
    assert model.apply(params, method=vae_networks.VAEModel.output_log_scale).shape == ()
    with pytest.raises(ValueError, match="labels"):
        model.apply(params, x, method=vae_networks.VAEModel.encode)
