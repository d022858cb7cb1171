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
# # 5. GAN, conditional GAN, InfoGAN and BiGAN
#
# Lecture 7.2, generative adversarial networks. A generator $G$ turns a random vector $z$ into an image;
# a discriminator $D$ tells real images from generated ones. They play
#
# $$\max_D \min_G V(G, D) = \mathbb E_{x \sim p_\text{data}} \log D(x) + \mathbb E_{z} \log(1 - D(G(z))),$$
#
# and training alternates: fix $G$ and update $D$, then fix $D$ and update $G$. The lecture's variants
# change what goes in and out:
#
# * **conditional GAN**: $G(z, y)$ and $D(x, y)$ see a label $y$, so we choose the digit;
# * **InfoGAN**: part of $G$'s input is a code $c$ (one of ten values, plus two continuous codes), and
#   a head $Q(c \mid x)$ on $D$ must recover it from the image, which forces $G$ to use the code in a
#   readable way; no labels are given, yet the categorical code tends to pick up the digit;
# * **BiGAN**: an encoder $E$ learns the inverse map $x \to z$; $D$ sees pairs and tells
#   $(x, E(x))$ from $(G(z), z)$.
#
# All four are pure, jitted train steps in `gm.deep.gan`. We train them on scikit-learn's 8x8 digits
# with small MLPs and judge the samples with a digit classifier trained on the same digits.

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gm import data
from gm.deep import classifier as digits
from gm.deep import gan, metrics

QUICK = os.environ.get("GM_NOTEBOOK_QUICK") == "1"
STEPS = 100 if QUICK else 6000  # alternating D / G steps per model
BATCH = 64
WIDTHS = dict(generator_hidden=(64,), discriminator_hidden=(64,), encoder_hidden=(64,), q_hidden=16) if QUICK else \
    dict(generator_hidden=(128, 256), discriminator_hidden=(256, 128), encoder_hidden=(256, 128), q_hidden=64)
WIDTHS["image_shape"] = (8, 8, 1)  # the 8x8 digits (the configs default to MNIST's 28x28)
CLASSIFIER_EPOCHS = 2 if QUICK else 15
print(f"QUICK = {QUICK}: {STEPS} steps per model")

ds = data.digits()
train_images, train_labels = jnp.asarray(ds.train.images), jnp.asarray(ds.train.labels)


def show(ax, images, rows=1, title=""):
    """Draw grey images f32[N, H, W, 1] on ``ax`` as a grid of ``rows`` rows (`gm.data.image_grid`)."""
    ax.imshow(data.image_grid(images, rows)[..., 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


# %% [markdown]
# ## Training: alternating steps
#
# `gan.train_step(key, config, state, batch)` takes `config.d_steps` discriminator steps (G fixed), then one
# generator step (D fixed); `gan.discriminator_step` and `gan.generator_step` are the two halves. The
# config is static, so each model compiles once. We keep D's accuracy on real and on fake batches: when
# D wins completely, G gets no useful gradient.

# %%
configs = {
    "GAN": gan.GANConfig(model="gan", latent_dim=16, **WIDTHS),
    "cGAN": gan.GANConfig(model="cgan", latent_dim=16, conditioning="projection", **WIDTHS),
    # the mutual-information term trains Q's head but not D's shared trunk (info_trains_trunk=False): G
    # must then put the code into features that D finds realistic, not into speckle only Q reads
    "InfoGAN": gan.GANConfig(model="infogan", latent_dim=16, n_categories=10, n_continuous=2, info_weight=2.0,
                             continuous_weight=0.5, info_trains_trunk=False, **WIDTHS),
    "BiGAN": gan.GANConfig(model="bigan", latent_dim=8, condition_every_layer=False, **WIDTHS),
}


def train(config, key):
    """STEPS alternating steps on random batches; returns the state and the metrics per step."""
    k_init, k_steps = jax.random.split(key)
    state = gan.create_state(k_init, config, {"image": train_images[:BATCH], "label": train_labels[:BATCH]})
    history = []
    for step in range(STEPS):
        k_batch, k_step = jax.random.split(jax.random.fold_in(k_steps, step))
        idx = jax.random.choice(k_batch, len(train_images), (BATCH,), replace=False)
        state, m = gan.train_step(k_step, config, state, {"image": train_images[idx], "label": train_labels[idx]})
        history.append({k: float(v) for k, v in m.items()})
    return state, history


states, histories = {}, {}
for (name, config), key in zip(configs.items(), jax.random.split(jax.random.key(0), len(configs))):
    start = time.perf_counter()
    states[name], histories[name] = train(config, key)
    last = histories[name][-1]
    print(f"{name:8s} {STEPS} steps in {time.perf_counter() - start:5.1f} s; D accuracy real "
          f"{last['d_real_accuracy']:.2f}, fake {last['d_fake_accuracy']:.2f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3))
window = max(1, STEPS // 50)
for name, history in histories.items():
    smooth = lambda v: np.convolve(v, np.ones(window) / window, mode="valid")  # noqa: E731
    axes[0].plot(smooth([h["d_loss"] for h in history]), label=f"{name} D")
    axes[1].plot(smooth([h["g_loss"] for h in history]), label=f"{name} G")
axes[0].set_title("discriminator loss")
axes[1].set_title("generator loss")
for ax in axes:
    ax.set_xlabel("step")
    ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Samples, and how good they are
#
# A small CNN classifier trained on the training digits (`gm.deep.metrics`) reads the samples. Three
# numbers per model: the classifier's mean confidence, how many of the ten digits appear among the
# samples (a collapsed GAN draws only a few), and the Fréchet distance between the classifier's
# features of the samples and of the held-out digits (lower is closer).

# %%
start = time.perf_counter()
classifier = digits.train_classifier(
    jax.random.key(1),
    digits.ClassifierConfig(image_shape=(8, 8, 1), features=(32, 64), hidden=32, epochs=CLASSIFIER_EPOCHS,
                            max_shift=0),
    ds.train.images, ds.train.labels)
print(f"classifier: test accuracy {digits.accuracy(classifier, ds.test.images, ds.test.labels):.3f} "
      f"({time.perf_counter() - start:.1f} s)")
_, test_features = digits.classify(classifier, ds.test.images)

num_samples = 500
wanted = jnp.arange(num_samples) % 10
fig, axes = plt.subplots(1, len(states), figsize=(14, 2.6))
for ax, (name, state) in zip(axes, states.items()):
    samples = gan.generate(jax.random.key(2), configs[name], state, num_samples, labels=wanted if name == "cGAN" else None)
    logits, features = digits.classify(classifier, samples)
    show(ax, samples[:40], 4, name)
    line = (f"{name:8s} confidence {metrics.classifier_confidence(logits):.2f}, digits covered "
            f"{metrics.mode_coverage(logits, 10)['covered']}/10, Fréchet distance "
            f"{metrics.frechet_distance(test_features, features):.1f}")
    if name == "cGAN":
        line += f", classified as the asked-for digit {metrics.conditional_accuracy(logits, wanted):.0%}"
    print(line)
_, train_features = digits.classify(classifier, ds.train.images[:num_samples])
print(f"(reference: {num_samples} training digits' Fréchet distance to the test digits "
      f"{metrics.frechet_distance(test_features, train_features):.1f})")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Conditional GAN: one row per label
#
# The cGAN's label enters every generator layer; the projection discriminator scores $\psi(\phi(x)) +
# \langle \mathrm{embed}(y), \phi(x) \rangle$, so it judges whether the image fits the label.

# %%
labels = jnp.tile(jnp.arange(10), 6)
by_label = gan.generate(jax.random.key(3), configs["cGAN"], states["cGAN"], 60, labels=labels)  # labels 0..9, six times
show(plt.subplots(figsize=(3.5, 6))[1], by_label.reshape(6, 10, 8, 8, 1).transpose(1, 0, 2, 3, 4).reshape(60, 8, 8, 1),
     10, "cGAN: digit y in row y")
plt.show()

# %% [markdown]
# ## InfoGAN: what the codes learned, without labels
#
# Row $c$ below holds samples generated with categorical code $c$. If the code has captured the digit,
# each row shows one digit. `metrics.matched_accuracy` measures it: the classifier's predictions of
# the samples against their codes, under the best one-to-one matching of codes to digits. The second
# panel sweeps the first continuous code from -1 to 1 with everything else fixed.

# %%
info, info_config = states["InfoGAN"], configs["InfoGAN"]
codes = jnp.repeat(jnp.arange(10), 8)
coded = gan.generate(jax.random.key(4), info_config, info, 80, categorical=codes)
predicted = digits.classify(classifier, coded)[0].argmax(-1)
many = jnp.arange(num_samples) % 10
predicted_many = digits.classify(classifier, gan.generate(jax.random.key(5), info_config, info, num_samples, categorical=many))[0]
print(f"InfoGAN: categorical code as a digit label (best matching) {metrics.matched_accuracy(many, predicted_many.argmax(-1), 10):.0%}"
      f"; Q recovers the code of its own samples {float(jnp.mean(gan.predict_codes(info_config, info, coded).argmax(-1) == codes)):.0%}")
sweep = jnp.linspace(-1, 1, 8)
latent = gan.sample_latent(jax.random.key(6), info_config, 8, categorical=jnp.zeros(8, jnp.int32),
                           continuous=jnp.stack([sweep, jnp.zeros(8)], -1))
latent = latent._replace(z=jnp.broadcast_to(latent.z[:1], latent.z.shape))  # one z for the whole row
fig, axes = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 1]})
show(axes[0], coded, 10, "InfoGAN: categorical code c in row c")
show(axes[1], gan.generate_from_latent(info_config, info, latent), title="continuous code 1 from -1 to 1")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## BiGAN: an encoder for free
#
# The BiGAN's encoder maps an image to the generator's latent space. Its reconstruction $G(E(x))$ is
# not trained to copy pixels (only the joint pairs are compared), so it keeps what the pair
# discriminator found telling. A linear classifier on $E(x)$ (a *linear probe*) shows how much of the
# digit identity the unsupervised encoder captured, compared with the same probe on a randomly
# initialised encoder.

# %%
bigan = states["BiGAN"]
show(plt.subplots(figsize=(7, 1.6))[1], jnp.concatenate([ds.test.images[:12], gan.reconstruct(configs["BiGAN"], bigan, ds.test.images[:12])]),
     2, "test digits (top) and G(E(x)) (bottom)")
plt.show()
untrained = gan.create_state(jax.random.key(7), configs["BiGAN"], {"image": train_images[:BATCH]})
for label, state in (("trained E", bigan), ("random E", untrained)):
    probe = metrics.linear_probe_accuracy(gan.encode(configs["BiGAN"], state, ds.train.images), ds.train.labels,
                                          gan.encode(configs["BiGAN"], state, ds.test.images), ds.test.labels)
    print(f"linear probe on {label}(x): test accuracy {probe:.1%}")
