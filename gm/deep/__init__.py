"""Deep generative models with flax and optax: networks, the VAE, GAN and image-translation families, train
state, checkpoints, a digit classifier and the sample metrics built on it.

Submodules, one job each:

* shared: :mod:`gm.deep.networks` (encoders, decoders, batch normalisation), :mod:`gm.deep.densities` (log
  densities, Gaussian KL, reparameterisation), :mod:`gm.deep.train` (train state, step results, optimisers,
  orbax checkpoints, early stopping);
* VAE family: :mod:`gm.deep.vae_networks` (config and flax model), :mod:`gm.deep.vae` (autoencoder, VAE,
  conditional VAE: bounds, steps, sampling);
* GAN family: :mod:`gm.deep.gan_networks` (config, latent inputs, networks), :mod:`gm.deep.gan_losses`
  (adversarial losses shared with image translation, InfoGAN and BiGAN losses), :mod:`gm.deep.gan` (GAN,
  conditional GAN, InfoGAN, BiGAN as pure alternating train steps);
* image translation: :mod:`gm.deep.translate_networks` (U-Net, latent encoder, PatchGAN),
  :mod:`gm.deep.translate` (what both families share), :mod:`gm.deep.translate_paired` (pix2pix, cAE-GAN,
  cVAE-GAN, cLR-GAN, BicycleGAN), :mod:`gm.deep.translate_cyclegan` (CycleGAN);
* evaluation: :mod:`gm.deep.classifier` (a digit classifier trained and cached here),
  :mod:`gm.deep.metrics` (the sample metrics built on it).

Every function follows the README's convention: the key first, then the model's config, then the state or
parameters and the data (``vae.train_step(key, config, state, batch)``).
"""

import importlib

__all__ = [
    "networks",
    "densities",
    "train",
    "vae_networks",
    "vae",
    "gan_networks",
    "gan_losses",
    "gan",
    "translate_networks",
    "translate",
    "translate_paired",
    "translate_cyclegan",
    "classifier",
    "metrics",
]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"gm.deep.{name}")
    raise AttributeError(f"module 'gm.deep' has no attribute {name!r}")
