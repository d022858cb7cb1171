"""Deep generative models with flax and optax: networks, the VAE family, train state, checkpoints, metrics.

Submodules: :mod:`gm.deep.networks` (encoders/decoders), :mod:`gm.deep.vae` (autoencoder, VAE, conditional
VAE), :mod:`gm.deep.train` (train state, optimisers, orbax checkpoints, early stopping),
:mod:`gm.deep.metrics` (a digit classifier and the sample metrics built on it),
:mod:`gm.deep.gan_losses` (adversarial losses shared by the GAN and image-translation families),
:mod:`gm.deep.gan` (GAN, conditional GAN, InfoGAN, BiGAN as pure alternating train steps),
:mod:`gm.deep.translate` (CycleGAN, pix2pix, cAE-GAN, cVAE-GAN, cLR-GAN, BicycleGAN).
"""

import importlib

__all__ = ["networks", "vae", "train", "metrics", "gan_losses", "gan", "translate"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"gm.deep.{name}")
    raise AttributeError(f"module 'gm.deep' has no attribute {name!r}")
