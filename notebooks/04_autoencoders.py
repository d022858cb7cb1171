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
# # 4. Autoencoder, VAE and conditional VAE: can we feed any z to the decoder?
#
# Lecture 7.2, the variational autoencoder. An autoencoder compresses an image $x$ to a code
# $z = f(x)$ and decodes it back. After training, *can we input any $z$ vector in the decoder?* Nothing
# in its loss says what codes the decoder will see, so a random $z$ may land where the decoder was never
# trained. A VAE makes the codes a distribution: the encoder gives $q(z \mid x) = \mathcal N(\mu(x),
# \sigma^2(x))$, the prior is $p(z) = \mathcal N(0, I)$, and training maximises the evidence lower bound
#
# $$\log p(x) \ge \mathbb E_{q(z \mid x)} \log p(x \mid z) - \mathrm{KL}(q(z \mid x) \,\|\, p(z)),$$
#
# whose KL term pulls the codes towards the prior, so that $z \sim \mathcal N(0, I)$ decodes to something
# digit-like. A conditional VAE also gives the label $y$ to encoder and decoder, $p(x \mid z, y)$: we
# choose which digit to draw.
#
# We train the three models of `gm.deep.vae` with the same networks on scikit-learn's 8x8 digits
# (`gm.data.digits`, shipped with scikit-learn, nothing downloaded) and compare their samples from the
# prior, measured by a small digit classifier (`gm.deep.metrics`).

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gm import data
from gm.deep import classifier as digits
from gm.deep import metrics, vae

QUICK = os.environ.get("GM_NOTEBOOK_QUICK") == "1"
STEPS = 150 if QUICK else 4000  # training steps per model
HIDDEN = (128,) if QUICK else (256, 128)
LATENT = 8
BATCH = 100
CLASSIFIER_EPOCHS = 2 if QUICK else 15
print(f"QUICK = {QUICK}: {STEPS} steps per model, hidden layers {HIDDEN}, latent dimension {LATENT}")

# %%
ds = data.digits()  # 1,500 train / 297 test, f32[N, 8, 8, 1] in [0, 1]
print(f"train {ds.train.images.shape}, test {ds.test.images.shape}")


def show(ax, images, rows=1, title=""):
    """Draw grey images f32[N, H, W, 1] on ``ax`` as a grid of ``rows`` rows (`gm.data.image_grid`)."""
    ax.imshow(data.image_grid(images, rows)[..., 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


show(plt.subplots(figsize=(10, 0.9))[1], ds.train.images[:20], title="training digits")
plt.show()

# %% [markdown]
# ## Train the three models
#
# One `VAEConfig` per model, the same MLP encoder and decoder. `vae.train_step(key, config, state, batch)`
# (key first, config next: the library's convention) is a pure function, jitted once per config: it binarises the batch afresh (the Bernoulli likelihood
# wants binary pixels) and takes one Adam step on the negative ELBO (VAE, cVAE) or on the
# reconstruction loss alone (AE).

# %%
configs = {
    "AE": vae.VAEConfig(model="ae", image_shape=(8, 8, 1), latent_dim=LATENT, hidden=HIDDEN),
    "VAE": vae.VAEConfig(model="vae", image_shape=(8, 8, 1), latent_dim=LATENT, hidden=HIDDEN),
    "cVAE": vae.VAEConfig(model="cvae", image_shape=(8, 8, 1), latent_dim=LATENT, hidden=HIDDEN, condition_every_layer=True),
}
train_images, train_labels = jnp.asarray(ds.train.images), jnp.asarray(ds.train.labels)


def train(config, key):
    """STEPS steps of vae.train_step on random batches; returns the state and the loss curve."""
    k_init, k_steps = jax.random.split(key)
    state = vae.create_state(k_init, config, {"image": train_images[:BATCH], "label": train_labels[:BATCH]})
    losses = []
    for step in range(STEPS):
        k_batch, k_step = jax.random.split(jax.random.fold_in(k_steps, step))
        idx = jax.random.choice(k_batch, len(train_images), (BATCH,), replace=False)
        state, m = vae.train_step(k_step, config, state, {"image": train_images[idx], "label": train_labels[idx]})
        losses.append(float(m["loss"]))
    return state, np.asarray(losses)


states, curves = {}, {}
for (name, config), key in zip(configs.items(), jax.random.split(jax.random.key(0), len(configs))):
    start = time.perf_counter()
    states[name], curves[name] = train(config, key)
    print(f"{name:4s}: {STEPS} steps in {time.perf_counter() - start:.1f} s, final loss {curves[name][-20:].mean():.1f} nats")

test_batch = {"image": jnp.asarray(ds.test.images), "label": jnp.asarray(ds.test.labels)}
for name, state in states.items():
    m = vae.eval_step(jax.random.key(1), configs[name], state, test_batch)
    print(f"{name:4s} test: -ELBO {float(jnp.mean(m['nelbo'])):6.2f} nats "
          f"(reconstruction {float(jnp.mean(m['reconstruction'])):.2f} + KL {float(jnp.mean(m['kl'])):.2f})")

fig, ax = plt.subplots(figsize=(6, 3))
for name, c in curves.items():
    ax.plot(np.convolve(c, np.ones(20) / 20, mode="valid"), label=name)
ax.set_xlabel("step")
ax.set_ylabel("training loss (nats, smoothed)")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The AE's loss is only the reconstruction, so it is the lowest; the VAE pays for the KL term. All three
# reconstruct held-out digits (`vae.reconstruct` decodes the posterior mean $\mu(x)$):

# %%
fig, axes = plt.subplots(4, 1, figsize=(8, 3.2))
show(axes[0], ds.test.images[:12], title="test digits")
for ax, (name, state) in zip(axes[1:], states.items()):
    labels = test_batch["label"][:12] if name == "cVAE" else None
    show(ax, vae.reconstruct(configs[name], state, test_batch["image"][:12], labels), title=f"{name} reconstruction")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Feeding z ~ N(0, I) to the decoder
#
# Now the lecture's question. `vae.sample(key, config, state, num_samples)` decodes $z \sim \mathcal N(0, I)$. A digit
# classifier trained on the same training digits scores the samples: its mean confidence (sharp,
# digit-like samples score high) and the Fréchet distance between its features of the samples and of
# the test digits (lower is closer; the FID recipe with this classifier in place of Inception).

# %%
start = time.perf_counter()
classifier = digits.train_classifier(
    jax.random.key(2),
    digits.ClassifierConfig(image_shape=(8, 8, 1), features=(32, 64), hidden=32, epochs=CLASSIFIER_EPOCHS,
                            max_shift=0),
    ds.train.images, ds.train.labels)
print(f"classifier: test accuracy {digits.accuracy(classifier, ds.test.images, ds.test.labels):.3f} "
      f"({time.perf_counter() - start:.1f} s)")
_, test_features = digits.classify(classifier, ds.test.images)

num_samples = 500
sample_labels = jnp.arange(num_samples) % 10
samples = {name: vae.sample(jax.random.key(3), configs[name], state, num_samples, sample_labels if name == "cVAE" else None)
           for name, state in states.items()}
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, (name, images) in zip(axes, samples.items()):
    logits, features = digits.classify(classifier, images)
    show(ax, images[:40], 4, f"{name}: z ~ N(0, I)")
    line = (f"{name:4s} confidence {metrics.classifier_confidence(logits):.2f}, "
            f"Fréchet distance to test digits {metrics.frechet_distance(test_features, features):.1f}")
    if name == "cVAE":
        line += f", classified as the asked-for digit {metrics.conditional_accuracy(logits, sample_labels):.0%}"
    print(line)
_, train_features = digits.classify(classifier, ds.train.images[:num_samples])
print(f"(reference: training digits' Fréchet distance to test digits {metrics.frechet_distance(test_features, train_features):.1f})")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Why: where the codes live
#
# The encoders' codes $\mu(x)$ of the test digits, dimension by dimension: the VAE's stay on the scale
# of the prior ($\pm 2$), because every KL term pulls them there; the AE's are free to sit anywhere, so
# prior draws land in regions the decoder has never decoded.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
for ax, name in zip(axes, ("AE", "VAE")):
    mean, _ = vae.encode(configs[name], states[name].params, test_batch["image"])
    mean = np.asarray(mean)
    ax.boxplot(mean, showfliers=False)
    ax.axhspan(-2, 2, color="C2", alpha=0.15, label="95% of N(0, 1)")
    ax.set_xlabel("latent dimension")
    ax.set_title(f"{name}: codes of the test digits (std per dimension {mean.std(0).mean():.2f})", fontsize=9)
axes[0].set_ylabel("mu(x)")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Conditional generation and interpolation
#
# The cVAE draws the digit we ask for: each row below keeps one $z$ and changes only the label, so $z$
# carries the style (slant, thickness) and $y$ the identity. `vae.interpolate` decodes the straight
# line between the VAE's codes of two test digits.

# %%
z_rows = 4
labels = jnp.tile(jnp.arange(10), z_rows)
z = jnp.repeat(jax.random.normal(jax.random.key(4), (z_rows, LATENT)), 10, axis=0)
cvae_state = states["cVAE"]
images = jax.nn.sigmoid(vae.decode(configs["cVAE"], cvae_state.params, z, labels))
fig, axes = plt.subplots(2, 1, figsize=(7, 3.6), gridspec_kw={"height_ratios": [z_rows, 1]})
show(axes[0], images, z_rows, "cVAE: one z per row, labels 0-9 across")
first_0, first_7 = (int(np.argmax(ds.test.labels == d)) for d in (0, 7))
show(axes[1], vae.interpolate(configs["VAE"], states["VAE"], ds.test.images[first_0], ds.test.images[first_7], 10),
     title="VAE: from the codes of a test 0 to a test 7")
fig.tight_layout()
plt.show()
