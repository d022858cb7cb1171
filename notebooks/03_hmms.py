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
# # 3. Hidden Markov models and dynamic Bayesian networks
#
# Lecture 7.2, the dynamic part. A dynamic Bayesian network repeats one slice of variables over time
# and links each slice to the previous one (the Markov condition: the state at time $t$ depends only on
# the state at $t-1$). Its simplest case is the hidden Markov model: one hidden chain $z_t$ and one
# observation $x_t$ per step,
#
# $$p(z_{1:T}, x_{1:T}) = p(z_1) \prod_{t>1} p(z_t \mid z_{t-1}) \prod_t p(x_t \mid z_t).$$
#
# This notebook samples an HMM, filters, smooths and decodes it (`gm.temporal`), learns it back from
# the observations alone by EM (Baum-Welch), and then compares the lecture's multi-stream models (a
# factorial HMM, a coupled HMM and the Boltzmann zipper, `gm.temporal.dbn`) on two coupled streams,
# "audio" and "video", as in `experiments/audio_visual.py`.

# %%
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gm import learn
from gm import temporal as tm
from gm.temporal import dbn

# the audio-visual ground truth lives with the experiment scripts at the root of the repository
ROOT = next(p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents] if (p / "experiments").is_dir())
sys.path.insert(0, str(ROOT))
from experiments.audio_visual import truth_model  # noqa: E402

QUICK = os.environ.get("GM_NOTEBOOK_QUICK") == "1"
NUM_SEQUENCES, NUM_STEPS, EM_ITERS = (4, 200, 30) if QUICK else (20, 1000, 200)
AV_TRAIN, AV_TEST, AV_STEPS, AV_ITERS = (4, 4, 30, 8) if QUICK else (40, 40, 100, 60)
print(f"QUICK = {QUICK}")

# %% [markdown]
# ## The dishonest casino
#
# A casino switches between a fair die and a loaded one that shows a six half of the time (Durbin et
# al., 1998). The die in use is the hidden state; we only see the rolls. `tm.sample` draws states and,
# given an emission sampler, observations.

# %%
initial = jnp.array([0.5, 0.5])
transition = jnp.array([[0.95, 0.05],   # fair -> fair, loaded
                        [0.10, 0.90]])  # loaded -> fair, loaded
emission = jnp.array([[1 / 6] * 6, [0.1] * 5 + [0.5]])  # faces 1..6 (index 5 is a six)
family = tm.Categorical(6)
true_params = tm.HMM(initial, transition, tm.CategoricalParams(emission))


def roll(key, state):
    return family.sample(key, true_params.emission, state)


keys = jax.random.split(jax.random.key(0), NUM_SEQUENCES)
states, rolls = jax.vmap(lambda k: tm.sample(k, initial, transition, NUM_STEPS, roll))(keys)
print(f"states and rolls: {rolls.shape}; first rolls {np.asarray(rolls[0, :20]) + 1}")

# %% [markdown]
# ## Filtering, smoothing and Viterbi
#
# Inference takes the per-step log-likelihoods $\log p(x_t \mid z_t = k)$, an array `f32[T, K]`, so the
# same functions serve every emission family.
#
# * `tm.filter`: $p(z_t \mid x_{1:t})$, what we know online;
# * `tm.smoother`: $p(z_t \mid x_{1:T})$, using the future as well (forward-backward);
# * `tm.viterbi`: the single most probable path $\arg\max_{z_{1:T}} p(z_{1:T} \mid x_{1:T})$.
#
# All three also return $\log p(x_{1:T})$ or the path's log-probability.

# %%
log_lik = family.log_likelihood(true_params.emission, rolls[0])  # f32[T, 2]
filtered = tm.filter(initial, transition, log_lik)
smoothed = tm.smoother(initial, transition, log_lik)
path = tm.viterbi(initial, transition, log_lik)
print(f"log p(x) = {float(smoothed.log_evidence):.2f} (filter: {float(filtered.log_evidence):.2f})")
truth = np.asarray(states[0])
for name, guess in [("filter", filtered.filtered[:, 1] > 0.5), ("smoother", smoothed.marginals[:, 1] > 0.5),
                    ("Viterbi", path.states == 1)]:
    print(f"  {name:8s} accuracy {np.mean(np.asarray(guess) == (truth == 1)):.3f}")

shown = min(NUM_STEPS, 300)
fig, ax = plt.subplots(figsize=(11, 3))
ax.fill_between(np.arange(shown), 0, truth[:shown] == 1, step="mid", color="0.85", label="truth: loaded")
ax.plot(np.asarray(filtered.filtered[:shown, 1]), color="C1", lw=1, label="filtered")
ax.plot(np.asarray(smoothed.marginals[:shown, 1]), color="C3", lw=1.5, label="smoothed")
ax.plot(np.asarray(path.states[:shown]) * 1.03, color="C0", ls="--", lw=1, label="Viterbi")
ax.set_xlabel("roll")
ax.set_ylabel("P(loaded)")
ax.legend(loc="upper right", ncol=4, fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Learning the HMM back by EM
#
# Baum-Welch alternates an E-step (expected state and transition counts from forward-backward) and an
# M-step (normalised counts). Estimation lives in `gm.learn`: `learn.hmm.init` draws a random start
# (`stickiness` favours staying in a state); `learn.hmm.fit` runs EM over a batch of sequences and returns
# a `learn.FitResult` whose `log_likelihood` history never decreases. The fitted states come in an arbitrary order, so we call the
# state that rolls more sixes "loaded".

# %%
params = learn.hmm.init(jax.random.key(1), family, 2, rolls, stickiness=0.5)
start = time.perf_counter()
fitted, history, _ = learn.hmm.fit(family, params, rolls, num_iters=EM_ITERS)
print(f"{EM_ITERS} EM iterations on {rolls.size} rolls in {time.perf_counter() - start:.1f} s")
print(f"log-likelihood per roll: {float(history[0]) / rolls.size:.4f} before EM, {float(history[-1]) / rolls.size:.4f} after")
order = jnp.argsort(fitted.emission.probs[:, 5])  # fair first
np.set_printoptions(precision=3, suppress=True)
print("fitted transition\n", np.asarray(fitted.transition[order][:, order]), "\ntrue\n", np.asarray(transition))
print("fitted P(six):", np.asarray(fitted.emission.probs[order, 5]), " true:", np.asarray(emission[:, 5]))
true_ll = float(jnp.sum(jax.vmap(lambda x: tm.posterior(family, true_params, x).log_evidence)(rolls)))

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(np.asarray(history) / rolls.size, label="EM")
ax.axhline(true_ll / rolls.size, color="k", ls=":", label="true parameters")
ax.set_xlabel("EM iteration")
ax.set_ylabel("log-likelihood per roll")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Two streams: factorial HMM, coupled HMM and the Boltzmann zipper
#
# Audio $x_t$ and video $y_t$, each with its own hidden state ($h_t$ and $v_t$, three values each, five
# symbols per stream). The data come from a coupled HMM in which the video state tends to follow the
# previous audio state. The lecture's three models make different assumptions about the streams:
#
# * **factorial HMM**: two independent chains $p(h_{t+1} \mid h_t)$, $p(v_{t+1} \mid v_t)$ and one
#   observation of both, $p(x_t, y_t \mid h_t, v_t)$;
# * **Boltzmann zipper**: $p(h_{t+1} \mid h_t)$, $p(v_{t+1} \mid v_t, h_{t+1})$: the audio is privileged,
#   the video follows it;
# * **coupled HMM**: $p(h_{t+1} \mid h_t, v_t)$, $p(v_{t+1} \mid v_t, h_t)$: neither stream privileged.
#
# Each is a 2-slice DBN (`gm.temporal.dbn`): exact inference on any evidence pattern
# (`dbn.smoother`), and EM whose E-step is the gradient of $\log p(e)$ (`learn.dbn.em_step`). We fit all three
# from random CPTs on training sequences and compare held-out log-likelihood per step.

# %%
KH = KV = 3
VX = VY = 5
truth_av = truth_model()
print(truth_av)
k_train, k_test, k_fit = jax.random.split(jax.random.key(2), 3)
av_train = jax.vmap(lambda k: dbn.sample(k, truth_av, AV_STEPS))(jax.random.split(k_train, AV_TRAIN))
av_test = jax.vmap(lambda k: dbn.sample(k, truth_av, AV_STEPS))(jax.random.split(k_test, AV_TEST))
H, V, X, Y = (truth_av.index(n) for n in ("h", "v", "x", "y"))
print(f"train {av_train.shape}, test {av_test.shape} (sequences, steps, (h, v, x, y))")


def observed_streams(data):
    """Hide the states (-1): the evidence is the two observation streams."""
    return data.at[:, :, jnp.array([H, V])].set(-1)


def joint_symbol(data):
    """The factorial HMM sees one symbol x * VY + y per step; its chains h1, h2 are hidden."""
    hidden = jnp.full(data.shape[:2], -1)
    return jnp.stack([hidden, hidden, data[:, :, X] * VY + data[:, :, Y]], -1)


rng = np.random.default_rng(0)


def rows(*shape):
    """Random CPT rows (Dirichlet(1)) of the given shape; the last axis sums to one."""
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


uniform = np.ones(KH) / KH
models = {
    "factorial HMM": (dbn.factorial_hmm([uniform, uniform], [rows(KH, KH), rows(KV, KV)], rows(KH, KV, VX * VY)),
                      joint_symbol),
    "Boltzmann zipper": (dbn.boltzmann_zipper(uniform, rows(KH, KH), rows(KH, VX), rows(KH, KV), rows(KV, KH, KV),
                                              rows(KV, VY)), observed_streams),
    "coupled HMM": (dbn.coupled_hmm(uniform, uniform, rows(KH, KV, KH), rows(KV, KH, KV), rows(KH, VX), rows(KV, VY)),
                    observed_streams),
}

# %%
em_step = jax.jit(learn.dbn.em_step)
heldout, curves = {}, {}
for (name, (model, evidence_of)), key in zip(models.items(), jax.random.split(k_fit, len(models))):
    model = learn.dbn.init(key, model, stickiness=0.5)
    train_ev, test_ev = evidence_of(av_train), evidence_of(av_test)
    start = time.perf_counter()
    curve = []
    for _ in range(AV_ITERS):
        model, log_p = em_step(model, train_ev)
        curve.append(float(log_p) / train_ev[..., 0].size)
    post = jax.vmap(lambda e: dbn.smoother(model, e))(test_ev)
    heldout[name] = float(jnp.sum(post.log_evidence)) / test_ev[..., 0].size
    curves[name] = curve
    print(f"{name:17s} held-out log-lik/step {heldout[name]:.4f}  ({time.perf_counter() - start:.1f} s)")
true_post = jax.vmap(lambda e: dbn.smoother(truth_av, e))(observed_streams(av_test))
heldout["true coupled HMM"] = float(jnp.sum(true_post.log_evidence)) / av_test[..., 0].size
print(f"{'true coupled HMM':17s} held-out log-lik/step {heldout['true coupled HMM']:.4f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for name, curve in curves.items():
    axes[0].plot(curve, label=name)
axes[0].set_xlabel("EM iteration")
axes[0].set_ylabel("train log-lik / step")
axes[0].legend(fontsize=8)
axes[1].barh(list(heldout), list(heldout.values()), color=["C0", "C1", "C2", "0.5"])
axes[1].set_xlim(min(heldout.values()) - 0.05, max(heldout.values()) + 0.02)
axes[1].set_xlabel("held-out log-lik / step (higher is better)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The factorial HMM fits the training streams best (its joint emission table over both streams has the
# most parameters) but explains the held-out streams worst: its chains cannot influence each other, so
# it can only memorise the coupling through that table. The coupled HMM (the structure of the data) and
# the zipper (video following audio within a step, close to it) come near the true model; which of the
# two is ahead depends on the seed and on EM's local optima at these sizes. The true model's smoothed
# state marginals on one test sequence show what exact DBN inference recovers from the two observation
# streams alone:

# %%
shown = min(AV_STEPS, 60)
fig, axes = plt.subplots(2, 1, figsize=(11, 3.6), sharex=True)
for ax, name, col in zip(axes, ("h", "v"), (H, V)):
    ax.imshow(np.asarray(true_post.marginals[name][0, :shown]).T, aspect="auto", cmap="Blues", origin="lower",
              vmin=0, vmax=1)
    ax.scatter(np.arange(shown), np.asarray(av_test[0, :shown, col]), color="C3", marker="x", s=15, label="true state")
    ax.set_ylabel(f"{name}_t")
axes[0].legend(loc="upper right", fontsize=8)
axes[0].set_title("p(h_t | x, y) and p(v_t | x, y) under the true coupled HMM")
axes[1].set_xlabel("step")
fig.tight_layout()
plt.show()
