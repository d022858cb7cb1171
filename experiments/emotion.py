"""Inferring a learner's emotion from interaction logs: baseline, naive Bayes, Bayes net, dynamic BN.

The lecture compares these four models on Crystal Island logs (Sabourin et al., 2011: emotion accuracy
22.4% baseline, 18.1% naive Bayes, 25.5% Bayes net, 32.6% dynamic BN; valence 54.5%, 51.2%, 66.8%,
72.6%). We have no such logs, so we simulate students with an appraisal-theory story of our own and
compare the models on it. The numbers are properties of our simulation, not a reproduction; the claim
is the comparison.

    python -m experiments.emotion [--quick] [--out runs/emotion]

**Simulation** (per student, ``num_steps`` interaction windows, each ending in an emotion report):

* survey: a personality trait, ``Neuroticism`` in {low, high}, and a ``Goal`` orientation in
  {mastery, performance}; plus a hidden ``skill`` in [0.2, 0.9] that no model sees;
* events: in each window the student does one of {book_view, note, correct, incorrect, poster_view,
  idle}. What they do depends on how they felt in the previous window (curious students read books
  and posters, bored ones idle, frustrated ones guess and fail), on their goal (mastery: more reading
  and notes; performance: more answering) and on skill (the share of correct among answers);
* emotion in {anxious, bored, confused, curious, excited, focused, frustrated} (valence: curious,
  excited and focused positive, the rest negative). It persists: with probability 0.7 (0.8 for a
  negative emotion of a highly neurotic student) it stays as it was; otherwise it is the appraisal of
  the window's event in the light of goal and personality (a correct answer is exciting for a
  performance goal and focusing for a mastery goal; an incorrect one makes neurotic students anxious
  or frustrated and others confused; reading is interesting under a mastery goal and boring under a
  performance goal; idling is boring). The first window starts from a mood drawn from the trait.

**Models** (learned on training students, tested on held-out students; every CPT row has a
Dirichlet(0.5) prior, the posterior mean is the point estimate):

* baseline: the most frequent emotion (and valence) of the training reports;
* naive Bayes: the emotion as class, Event, Goal and Neuroticism as features (`gm.learn.naive_bayes`);
* Bayes net: Goal -> Event -> Emotion <- Goal, Neuroticism -> Emotion; the emotion of each window from
  that window's observations only (`gm.learn.dirichlet`, `gm.bn.marginals`);
* learned BN: the structure that maximises BIC on the training windows (`gm.learn.structure.exact_search`
  over every DAG on the four variables), CPTs and predictions as for the Bayes net; the table adds each
  static model's structural Hamming distance to the simulator's slice (the hand-built Bayes net's graph);
* dynamic BN (`gm.temporal.dbn`): the same slice plus Emotion[t-1] -> Event[t] and
  Emotion[t-1] -> Emotion[t]; the emotion of window t from the observations of windows 1..t
  (filtering; online, as a tutor would use it). Its CPTs are learned from the complete training
  sequences by the expected counts of `gm.temporal.dbn.expected_counts` (exact counts here).

Valence is predicted by summing the emotion posterior over each valence. For the Bayesian models, the
credible interval of an accuracy is the 2.5-97.5% range of the test accuracy under parameter draws from
the exact (conjugate) Dirichlet posterior: the uncertainty due to a finite training set. It does not
include the sampling of test students. The point value is the accuracy of the posterior-mean CPTs;
it often sits at the top of (or above) the interval, because predicting with averaged parameters is
better than predicting with any single draw.

No iterative training happens here (all estimates are closed form from counts), so there is no
checkpoint to resume. Writes ``results.json``, ``table.md`` and ``accuracy.png``.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gm import bn, learn
from gm.learn import naive_bayes
from gm.learn.structure import exact_search, shd, structure_edges
from gm.temporal import dbn as tdbn
from experiments._common import write_results

EMOTIONS = ("anxious", "bored", "confused", "curious", "excited", "focused", "frustrated")
POSITIVE = np.array([e in ("curious", "excited", "focused") for e in EMOTIONS])
EVENTS = ("book_view", "note", "correct", "incorrect", "poster_view", "idle")
GOALS = ("mastery", "performance")
TRAITS = ("low", "high")
NAMES = ("Goal", "Neuroticism", "Event", "Emotion")
GOAL, TRAIT, EVENT, EMOTION = range(4)
PSEUDO_COUNT = 0.5
PRIOR = learn.Prior.dirichlet(PSEUDO_COUNT, estimate="mean")  # the posterior mean under Dirichlet(0.5)

# what a student does after feeling each emotion: weights over EVENTS
_BEHAVIOUR = {
    "anxious": [0.20, 0.20, 0.15, 0.30, 0.05, 0.10],
    "bored": [0.05, 0.05, 0.10, 0.15, 0.15, 0.50],
    "confused": [0.35, 0.10, 0.05, 0.30, 0.10, 0.10],
    "curious": [0.30, 0.15, 0.15, 0.05, 0.30, 0.05],
    "excited": [0.10, 0.10, 0.40, 0.15, 0.15, 0.10],
    "focused": [0.20, 0.30, 0.30, 0.10, 0.05, 0.05],
    "frustrated": [0.10, 0.05, 0.05, 0.45, 0.05, 0.30],
}


def _appraisal(event: str, goal: str, trait: str) -> np.ndarray:
    """P(emotion | event, goal, neuroticism) when the emotion does not persist."""
    w = dict.fromkeys(EMOTIONS, 0.02)
    if event == "correct":
        w.update(excited=0.5, focused=0.3, curious=0.1) if goal == "performance" else w.update(
            focused=0.45, curious=0.3, excited=0.15)
    elif event == "incorrect":
        w.update(anxious=0.35, frustrated=0.35, confused=0.2) if trait == "high" else w.update(
            confused=0.45, frustrated=0.25, focused=0.15)
    elif event in ("book_view", "note"):
        w.update(curious=0.35, focused=0.4, confused=0.1) if goal == "mastery" else w.update(
            bored=0.3, focused=0.3, confused=0.2)
    elif event == "poster_view":
        w.update(curious=0.4, bored=0.3, excited=0.1)
    else:  # idle
        w.update(bored=0.55, frustrated=0.2, anxious=0.2 if trait == "high" else 0.05)
    p = np.array([w[e] for e in EMOTIONS])
    return p / p.sum()


APPRAISAL = np.array([[[_appraisal(ev, g, tr) for tr in TRAITS] for g in GOALS] for ev in EVENTS])  # [ev, g, tr, E]


def simulate(rng: np.random.Generator, num_students: int, num_steps: int) -> np.ndarray:
    """Interaction logs ``int32[num_students, num_steps, 4]`` with columns (Goal, Neuroticism, Event,
    Emotion) as state indices."""
    n = num_students
    goal = rng.integers(0, 2, n)
    trait = (rng.random(n) < 0.4).astype(int)
    skill = rng.uniform(0.2, 0.9, n)
    mood_prior = np.array([[0.05, 0.15, 0.15, 0.3, 0.1, 0.2, 0.05], [0.3, 0.1, 0.15, 0.15, 0.05, 0.1, 0.15]])
    emotion = np.array([rng.choice(7, p=mood_prior[t]) for t in trait])
    behaviour = np.array([_BEHAVIOUR[e] for e in EMOTIONS])
    out = np.zeros((n, num_steps, 4), np.int32)
    for t in range(num_steps):
        w = behaviour[emotion].copy()
        w[:, [0, 1]] *= np.where(goal == 0, 1.5, 1.0)[:, None]  # mastery: reading and notes
        w[:, [2, 3]] *= np.where(goal == 1, 1.5, 1.0)[:, None]  # performance: answering
        answers = w[:, 2] + w[:, 3]
        w[:, 2], w[:, 3] = answers * skill, answers * (1 - skill)
        w /= w.sum(1, keepdims=True)
        event = (rng.random(n)[:, None] > np.cumsum(w, 1)).sum(1).clip(0, 5)
        appraised = APPRAISAL[event, goal, trait]
        new = (rng.random(n)[:, None] > np.cumsum(appraised, 1)).sum(1).clip(0, 6)
        persist = np.where(~POSITIVE[emotion] & (trait == 1), 0.8, 0.7)
        emotion = np.where(rng.random(n) < persist, emotion, new)
        out[:, t] = np.stack([goal, trait, event, emotion], 1)
    return out


# --------------------------------------------------------------------------------------- models


def bn_structure() -> bn.Structure:
    states = (GOALS, TRAITS, EVENTS, EMOTIONS)
    parents = ((), (), (GOAL,), (EVENT, GOAL, TRAIT))
    return bn.Structure(NAMES, states, parents)


def dbn_template(cards=(2, 2, 6, 7)) -> tdbn.DBN:
    """The 2-TBN with uniform CPTs (the structure; the learned CPTs replace them)."""
    states = dict(zip(NAMES, cards))
    initial_parents = {"Event": ["Goal"], "Emotion": ["Event", "Goal", "Neuroticism"]}
    transition_parents = {"Goal": ["Goal[-1]"], "Neuroticism": ["Neuroticism[-1]"],
                          "Event": ["Emotion[-1]", "Goal"], "Emotion": ["Emotion[-1]", "Event", "Goal", "Neuroticism"]}

    def uniform(parents, name):
        shape = tuple(states[p.removesuffix("[-1]")] for p in parents) + (states[name],)
        return np.full(shape, 1.0 / states[name])

    return tdbn.from_dict(
        states, initial_parents=initial_parents, transition_parents=transition_parents,
        initial_cpts={n: uniform(initial_parents.get(n, []), n) for n in NAMES},
        transition_cpts={n: uniform(transition_parents[n], n) for n in NAMES},
    )


def _dbn_from_rows(template, rows):
    n = len(template.initial_cpts)
    return tdbn.DBN(template.structure, rows[:n], rows[n:])


def _accuracies(post, emotions):
    """Emotion and valence accuracy from posteriors f32[..., 7] against true int[...]."""
    emo = jnp.mean(jnp.argmax(post, -1) == emotions)
    pos = jnp.sum(jnp.where(jnp.asarray(POSITIVE), post, 0.0), -1)
    val = jnp.mean((pos > 0.5) == jnp.asarray(POSITIVE)[emotions])
    return jnp.stack([emo, val])


def _static_evidence(logs):
    ev = jnp.asarray(logs).reshape(-1, 4)
    return ev.at[:, EMOTION].set(-1)


def bn_accuracy(net, test):
    post = jax.vmap(lambda e: bn.marginals(net, e)["Emotion"])(_static_evidence(test))
    return _accuracies(post, jnp.asarray(test)[..., EMOTION].reshape(-1))


def nb_accuracy(model, test):
    x = jnp.asarray(test).reshape(-1, 4)
    post = naive_bayes.predict_proba(model, x[:, [EVENT, GOAL, TRAIT]])
    return _accuracies(post, x[:, EMOTION])


def dbn_accuracy(model, test):
    ev = jnp.asarray(test).at[..., EMOTION].set(-1)
    post = jax.vmap(lambda e: tdbn.filter(model, e).marginals["Emotion"])(ev)
    return _accuracies(post, jnp.asarray(test)[..., EMOTION])


def _interval(acc_draws):
    lo, hi = np.quantile(np.asarray(acc_draws), [0.025, 0.975], axis=0)
    return lo, hi


@functools.partial(jax.jit, static_argnums=3)
def score_naive_bayes(key, train, test, num_draws: int):
    """Accuracies f32[1 + num_draws, 2] (posterior mean, then draws) of naive Bayes (class = emotion;
    features = event, goal, neuroticism)."""
    flat = train.reshape(-1, 4)
    feats = flat[:, jnp.array([EVENT, GOAL, TRAIT])]
    model = naive_bayes.fit(feats, flat[:, EMOTION], alpha=PSEUDO_COUNT, num_classes=7, num_categories=[6, 2, 2],
                            feature_names=["Event", "Goal", "Neuroticism"], class_name="Emotion")
    # the same prior on the class as on the features, so that the posterior is one Dirichlet per row
    records = jnp.concatenate([flat[:, EMOTION][:, None], feats], 1)
    net = learn.dirichlet(model.net, records, prior=PRIOR)
    draws = learn.bayes.dirichlet_posterior(key, net, records, num_draws, prior=PRIOR)
    return jax.lax.map(lambda cpts: nb_accuracy(naive_bayes.NaiveBayes(bn.BayesNet(net.structure, cpts)), test),
                       _with_point(net.cpts, draws.cpts))


@functools.partial(jax.jit, static_argnums=(3, 4))
def score_bayes_net(key, train, test, num_draws: int, structure=None):
    """Accuracies f32[1 + num_draws, 2] of a static Bayes net (default: the hand-built `bn_structure`)."""
    structure = bn_structure() if structure is None else structure
    flat = train.reshape(-1, 4)
    net = learn.dirichlet(structure, flat, prior=PRIOR)
    draws = learn.bayes.dirichlet_posterior(key, structure, flat, num_draws, prior=PRIOR)
    return jax.lax.map(lambda cpts: bn_accuracy(bn.BayesNet(structure, cpts), test), _with_point(net.cpts, draws.cpts))


@functools.partial(jax.jit, static_argnums=3)
def score_dynamic_bn(key, train, test, num_draws: int, template):
    """Accuracies f32[1 + num_draws, 2] of the dynamic BN (filtering); ``template``: `dbn_template()`."""
    ci, ct, _ = tdbn.expected_counts(template, train)  # complete sequences: exact counts
    conc = [c + PSEUDO_COUNT for c in tuple(ci) + tuple(ct)]
    mean = [learn.normalize_counts(c) for c in conc]
    rows = learn.sample_dirichlet_rows(key, conc, (num_draws,))
    return jax.lax.map(lambda r: dbn_accuracy(_dbn_from_rows(template, r), test), _with_point(mean, rows))


def run_models(key, train, test, num_draws: int) -> dict:
    """Fit the models on ``train`` and score them on ``test`` (logs ``int32[S, T, 4]``)."""
    flat = train.reshape(-1, 4)
    majority = int(np.bincount(flat[:, EMOTION], minlength=7).argmax())
    majority_valence = bool(POSITIVE[flat[:, EMOTION]].mean() > 0.5)
    truth = test[..., EMOTION].reshape(-1)
    results = {"baseline": dict(emotion=float(np.mean(truth == majority)),
                                valence=float(np.mean(POSITIVE[truth] == majority_valence)))}
    template = dbn_template()
    learned = learned_structure(flat)
    scorers = {"naive_bayes": score_naive_bayes, "bayes_net": score_bayes_net,
               "learned_bn": lambda *a: score_bayes_net(*a, learned),
               "dynamic_bn": lambda *a: score_dynamic_bn(*a, template)}
    keys = jax.random.split(key, len(scorers))
    for k, (name, scorer) in zip(keys, tqdm(list(scorers.items()), desc="models", leave=False)):
        results[name] = _summary(scorer(k, jnp.asarray(train), jnp.asarray(test), num_draws))
    truth = structure_edges(bn_structure())
    naive = {(EMOTION, v) for v in (GOAL, TRAIT, EVENT)}
    for name, edges in (("naive_bayes", naive), ("bayes_net", truth), ("learned_bn", structure_edges(learned))):
        results[name]["shd"] = shd(edges, set(), truth, set())
    results["learned_bn"]["edges"] = sorted(f"{NAMES[a]} -> {NAMES[b]}" for a, b in structure_edges(learned))
    return results


def learned_structure(records) -> bn.Structure:
    """The BIC-optimal structure of the per-window records (exact search over all 543 DAGs on 4 variables)."""
    return exact_search(np.asarray(records), bn_structure(), score="bic").structure


def _with_point(point_cpts, draw_cpts):
    """The posterior-mean CPTs as draw 0, then the posterior draws (one compiled scoring function)."""
    return [jnp.concatenate([p[None], d]) for p, d in zip(point_cpts, draw_cpts)]


def _summary(acc):
    point, draws = acc[0], acc[1:]
    lo, hi = _interval(draws)
    return dict(emotion=float(point[0]), valence=float(point[1]),
                emotion_interval=[float(lo[0]), float(hi[0])], valence_interval=[float(lo[1]), float(hi[1])])


LABELS = {"baseline": "Baseline", "naive_bayes": "Naive Bayes", "bayes_net": "Bayes net",
          "learned_bn": "Learned BN (exact, BIC)", "dynamic_bn": "Dynamic BN"}
LECTURE = {"baseline": (22.4, 54.5), "naive_bayes": (18.1, 51.2), "bayes_net": (25.5, 66.8), "dynamic_bn": (32.6, 72.6)}


def table(results: dict) -> str:
    lines = ["| model | emotion accuracy | valence accuracy | SHD to the simulator's slice | lecture (emotion / valence) |",
             "|---|---|---|---|---|"]
    for key, label in LABELS.items():
        r = results[key]

        def cell(name):
            if f"{name}_interval" in r:
                lo, hi = r[f"{name}_interval"]
                return f"{100 * r[name]:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
            return f"{100 * r[name]:.1f}%"

        lecture = f"{LECTURE[key][0]}% / {LECTURE[key][1]}%" if key in LECTURE else "–"
        lines.append(f"| {label} | {cell('emotion')} | {cell('valence')} | {r.get('shd', '–')} | {lecture} |")
    return "\n".join(lines)


def figure(results: dict, path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    keys = list(LABELS)
    for ax, what in zip(axes, ("emotion", "valence")):
        vals = [100 * results[k][what] for k in keys]
        ax.bar(range(len(keys)), vals, color=["0.6", "C0", "C1", "C3", "C2"])
        for j, k in enumerate(keys):
            if f"{what}_interval" in results[k]:
                lo, hi = results[k][f"{what}_interval"]
                ax.vlines(j, 100 * lo, 100 * hi, color="k", lw=2)
        marks = [(j, LECTURE[k][0 if what == "emotion" else 1]) for j, k in enumerate(keys) if k in LECTURE]
        ax.scatter(*zip(*marks), marker="_", s=300, color="k", label="lecture (Crystal Island)")
        ax.set_xticks(range(len(keys)), [LABELS[k] for k in keys], fontsize=7, rotation=15)
        ax.set_ylabel(f"{what} accuracy (%)")
        ax.set_title(f"{what}: held-out students (bars: posterior-mean CPTs;\nlines: 95% interval under posterior draws)",
                     fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description="emotion from interaction logs: baseline, NB, BN, DBN")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/emotion")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n_train, n_test, steps, draws = (60, 30, 20, 30) if args.quick else (300, 150, 40, 400)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    train, test = simulate(rng, n_train, steps), simulate(rng, n_test, steps)
    results = run_models(jax.random.key(args.seed), train, test, draws)
    elapsed = time.perf_counter() - t0
    md = table(results)
    out = dict(config=dict(train_students=n_train, test_students=n_test, steps=steps, posterior_draws=draws,
                           pseudo_count=PSEUDO_COUNT, seed=args.seed),
               results=results, table=md, seconds=elapsed,
               emotion_frequencies=dict(zip(EMOTIONS, np.bincount(test[..., EMOTION].ravel(), minlength=7).tolist())))
    write_results(os.path.join(args.out, "results.json"), out)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    figure(results, os.path.join(args.out, "accuracy.png"))
    print(f"({elapsed:.1f} s)")
    return out


if __name__ == "__main__":
    main()
