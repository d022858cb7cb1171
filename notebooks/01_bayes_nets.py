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
# # 1. Bayesian networks: from the joint distribution to thousands of queries
#
# Lecture 7.2, part one. When we know the joint distribution of a few discrete variables, every
# question is a lookup or a sum over one tensor: a joint probability is one entry, a conditional query
# sums out the variables we neither ask about nor observe and then normalises,
#
# $$P(x \mid y) = \alpha \sum_{z} P(x, y, z).$$
#
# A Bayesian network stores the same joint compactly, one conditional probability table (CPT) per
# variable, $P(X_1, \dots, X_n) = \prod_i P(X_i \mid \mathrm{parents}(X_i))$, and `gm.bn` answers the
# same queries without ever writing the joint down. This notebook builds the lecture's burglary network,
# checks `gm.bn` against brute-force marginalisation, asks for every posterior marginal and the most
# probable explanation, and finally answers thousands of evidence sets on the 37-variable ALARM network
# with one `jax.vmap`.
#
# `QUICK` (set `GM_NOTEBOOK_QUICK=1`, as the tests do) shrinks the sizes so that the notebook runs in
# seconds.

# %%
import itertools
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gm import bn
from gm.data.networks import load_network

QUICK = os.environ.get("GM_NOTEBOOK_QUICK") == "1"
NUM_EVIDENCE_SETS = 200 if QUICK else 5000  # ALARM evidence sets answered at once
print(f"QUICK = {QUICK}; {NUM_EVIDENCE_SETS} evidence sets for ALARM")

# %% [markdown]
# ## The burglary network
#
# *"I'm at work, neighbor John calls to say my alarm is ringing, but neighbor Mary doesn't call.
# Sometimes it's set off by minor earthquakes. Is there a burglar?"* Five yes/no variables; a burglary
# and an earthquake can set the alarm off, and the alarm makes John and Mary call. The CPTs are Russell
# and Norvig's; each table's last axis is the child, its leading axes the parents in the order given.

# %%
NAMES = ("Burglary", "Earthquake", "Alarm", "JohnCalls", "MaryCalls")
net = bn.BayesNet.from_dict(
    states={name: ["no", "yes"] for name in NAMES},
    parents={"Alarm": ["Burglary", "Earthquake"], "JohnCalls": ["Alarm"], "MaryCalls": ["Alarm"]},
    cpts={
        "Burglary": [0.999, 0.001],
        "Earthquake": [0.998, 0.002],
        "Alarm": [[[0.999, 0.001], [0.71, 0.29]], [[0.06, 0.94], [0.05, 0.95]]],  # [b, e, a]
        "JohnCalls": [[0.95, 0.05], [0.10, 0.90]],
        "MaryCalls": [[0.99, 0.01], [0.30, 0.70]],
    },
)
for name in net.names:
    given = ", ".join(net.parent_names(name))
    print(f"P({name}{' | ' + given if given else ''}): shape {np.shape(net.cpt(name))}")

# %% [markdown]
# ## The joint distribution is a 5-D tensor
#
# `bn.log_prob(net, x)` is the chain rule over the graph for one full assignment. Evaluating it for all
# $2^5 = 32$ assignments (one `jax.vmap`) writes the whole joint as a tensor: one axis per variable.

# %%
every = jnp.array(list(itertools.product(*(range(c) for c in net.cards))), dtype=jnp.int32)
log_joint = jax.vmap(bn.log_prob, in_axes=(None, 0))(net, every)
joint = np.exp(np.asarray(log_joint, np.float64)).reshape(net.cards)
print(f"joint tensor: shape {joint.shape}, sums to {joint.sum():.6f}")

x = net.evidence({"Burglary": "no", "Earthquake": "no", "Alarm": "yes", "JohnCalls": "yes", "MaryCalls": "yes"})
print(f"P(B=no, E=no, A=yes, J=yes, M=yes) = {float(jnp.exp(bn.log_prob(net, x))):.6g}"
      f" = joint[0, 0, 1, 1, 1] = {joint[0, 0, 1, 1, 1]:.6g}")
print(f"free parameters: joint {joint.size - 1}, Bayes net "
      f"{sum(int(np.prod(np.shape(net.cpt(n))[:-1])) * (c - 1) for n, c in zip(net.names, net.cards))}")

# %% [markdown]
# ## A conditional query by marginalisation
#
# The lecture's question, $P(\text{Burglary} \mid \text{John calls}, \text{Mary does not})$: fix
# $J$ = yes and $M$ = no in the tensor, sum out Earthquake and Alarm, normalise. `bn.query` gives the
# same table without the tensor (a contraction of the CPTs with the evidence), and `bn.marginals` gives
# every variable's posterior at once.

# %%
b_and_evidence = joint[:, :, :, 1, 0].sum(axis=(1, 2))  # P(B, J=yes, M=no)
by_hand = b_and_evidence / b_and_evidence.sum()
evidence_jm = net.evidence({"JohnCalls": "yes", "MaryCalls": "no"})
by_query = np.asarray(bn.query(net, ["Burglary"], evidence_jm))
post = bn.marginals(net, evidence_jm)
print("P(Burglary | J=yes, M=no)")
print(f"  brute force over the joint: {by_hand.round(6)}")
print(f"  bn.query:                   {by_query.round(6)}")
print(f"  bn.marginals['Burglary']:   {np.asarray(post['Burglary']).round(6)}")
np.testing.assert_allclose(by_query, by_hand, atol=1e-6)

both = net.evidence({"JohnCalls": "yes", "MaryCalls": "yes"})
print(f"\nboth call: P(Burglary=yes | J, M) = {float(bn.query(net, ['Burglary'], both)[1]):.3f}"
      " (the textbook's 0.284)")

# %% [markdown]
# ## Every posterior marginal and the most probable explanation
#
# All marginals are one pass (one gradient of $\log P(e)$ with respect to the evidence vectors). The
# most probable explanation (MPE) is the single full assignment that best explains the evidence,
# $\arg\max_x P(x \mid e)$, from the same contraction in the max-product semiring. *Explaining away*
# shows up as well: once we know the alarm rang, also hearing of an earthquake makes a burglary much
# less likely.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, (title, evidence) in zip(axes, [("J = yes, M = no", evidence_jm), ("J = yes, M = yes", both)]):
    p_yes = [float(bn.marginals(net, evidence)[name][1]) for name in net.names]
    ax.barh(net.names, p_yes, color="C0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(yes | evidence)")
    ax.set_title(title)
    for i, p in enumerate(p_yes):
        ax.text(min(p + 0.02, 0.8), i, f"{p:.3f}", va="center")
fig.tight_layout()
plt.show()

for evidence in (evidence_jm, both):
    best = bn.mpe(net, evidence)  # gm.types.MPE(states, log_prob = log P(x*, e))
    p = float(jnp.exp(best.log_prob - bn.log_evidence(net, evidence)))
    print(f"MPE given {net.assignment(evidence)}:\n  {net.assignment(best.states)}  P(x | e) = {p:.4f}")

alarm_rang = net.evidence({"Alarm": "yes"})
quake_too = net.evidence({"Alarm": "yes", "Earthquake": "yes"})
print(f"\nexplaining away: P(B=yes | A=yes) = {float(bn.marginals(net, alarm_rang)['Burglary'][1]):.3f},"
      f" P(B=yes | A=yes, E=yes) = {float(bn.marginals(net, quake_too)['Burglary'][1]):.4f}")

# %% [markdown]
# ## Thousands of evidence sets at once: ALARM
#
# ALARM (a patient-monitoring network of 37 variables, 46 edges) ships with pgmpy; its joint would
# have over $10^{16}$ entries. We draw patients from the network itself (`bn.sample`, ancestral
# sampling), hide 80% of each record (-1 means unobserved) and ask for every posterior marginal of
# every record. The evidence is data, not structure, so one compiled function answers all of them:
# `jax.jit(jax.vmap(bn.marginals, in_axes=(None, 0)))`.

# %%
alarm = load_network("alarm")
print(alarm, f"joint entries: {float(np.prod(alarm.cards)):.2e}")
key_sample, key_hide = jax.random.split(jax.random.key(0))
records = bn.sample(key_sample, alarm, NUM_EVIDENCE_SETS)  # int32[B, 37]
observed = jax.random.uniform(key_hide, records.shape) < 0.2
batch = jnp.where(observed, records, -1)
print(f"evidence sets: {batch.shape}, {float(observed.mean()):.0%} of the values observed")

all_marginals = jax.jit(jax.vmap(bn.marginals, in_axes=(None, 0)))
start = time.perf_counter()
posts = jax.block_until_ready(all_marginals(alarm, batch))  # first call: compiles
first = time.perf_counter() - start
start = time.perf_counter()
posts = jax.block_until_ready(all_marginals(alarm, batch))
warm = time.perf_counter() - start
print(f"all marginals of {len(batch)} evidence sets: first call {first:.2f} s (with compilation), "
      f"then {warm * 1e3:.1f} ms = {len(batch) / warm:,.0f} sets/s")

# one evidence set on its own (the eager path: float64 on the host, no compilation) agrees
single = bn.marginals(alarm, batch[0])
err = max(float(jnp.max(jnp.abs(posts[n][0] - single[n]))) for n in alarm.names)
print(f"largest difference to a single eager query: {err:.1e}")

# %% [markdown]
# What do the records say about left-ventricular failure? The histogram shows the posterior
# $P(\text{LVFAILURE} = \text{TRUE} \mid e)$ over all evidence sets, split by the true (hidden) value
# that the sampled patient had: the posterior separates the two groups where the evidence is
# informative and falls back to the prior where it is not.

# %%
i_lv = alarm.index("LVFAILURE")
true_state = alarm.states[i_lv].index("TRUE")
p_lv = np.asarray(posts["LVFAILURE"][:, true_state])
hidden = ~np.asarray(observed[:, i_lv])
truth = np.asarray(records[:, i_lv]) == true_state
fig, ax = plt.subplots(figsize=(7, 3))
bins = np.linspace(0, 1, 26)
ax.hist(p_lv[hidden & ~truth], bins=bins, alpha=0.7, label="patient without LV failure")
ax.hist(p_lv[hidden & truth], bins=bins, alpha=0.7, label="patient with LV failure")
ax.set_yscale("log")
ax.set_xlabel("P(LVFAILURE = TRUE | evidence)")
ax.set_ylabel("evidence sets")
ax.legend()
fig.tight_layout()
plt.show()
print(f"mean posterior: {p_lv[hidden & truth].mean():.3f} with LV failure, "
      f"{p_lv[hidden & ~truth].mean():.3f} without (prior {float(bn.marginals(alarm, alarm.evidence())['LVFAILURE'][true_state]):.3f})")
