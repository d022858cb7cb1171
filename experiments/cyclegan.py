"""CycleGAN between unpaired digit styles: original strokes (A) <-> bold strokes (B), 16x16.

The data (:func:`gm.data.thin_thick_digits`) deals the 4,000 training digits to two disjoint halves, one
kept as it is (A) and one made bold by a 3x3 grey dilation (B), so no training pair exists. The 1,000
held-out digits exist in both styles, which gives the true translation for evaluation. Measured on them:

* class preservation both ways: a digit classifier (trained on both styles) reads ``G_AB(a)`` and
  ``G_BA(b)`` as the class of their source;
* cycle reconstruction: ``mean |G_BA(G_AB(a)) - a|`` and ``mean |G_AB(G_BA(b)) - b|`` on [0, 1] pixels;
* realism: Frechet distance to the real test digits of the target style (classifier features);
* L1 to the true translation (the same digit in the other style), which the model never saw.

Run ``python -m experiments.cyclegan [--quick] [--out runs/cyclegan] [--resume]``. Outputs in ``--out``:
``results.json``, ``translations.png`` (input / translation / cycle back / true translation, both ways),
``training_curves.png`` and orbax checkpoints in ``checkpoints/cyclegan``; the classifier is cached in
``--classifier-dir`` (the same cache as :mod:`experiments.bicyclegan`'s).
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common as common
from gm import data, parallel
from gm.deep import metrics, translate_cyclegan


def default_config() -> dict:
    """The full run: about 5-10 minutes on 2 CPU cores (shared, under load)."""
    return dict(
        steps=2500,
        batch_size=32,
        eval_every=250,
        # Adam at 5e-4 rather than the published 2e-4, to fit the run in minutes.
        model=dict(generator_features=(16, 32, 64), discriminator_features=(16, 32), learning_rate=5e-4),
        classifier=dict(image_shape=(16, 16, 1), epochs=8, max_shift=1),
        min_classifier_accuracy=0.95,
    )


def quick_config() -> dict:
    """A smoke test of every code path: a few seconds of training."""
    config = default_config()
    config.update(
        steps=6,
        batch_size=16,
        eval_every=3,
        model=dict(generator_features=(8, 16), discriminator_features=(8,), learning_rate=5e-4),
        classifier=dict(image_shape=(16, 16, 1), epochs=1, features=(8, 16), hidden=32, max_shift=1),
        min_classifier_accuracy=0.0,
    )
    return config


def fit(config: translate_cyclegan.CycleGANConfig, ds, cfg: dict, *, seed: int, out: str, resume: bool,
        stop_after_steps: int | None, progress: bool = True, force: bool = False):
    """Train for ``cfg["steps"]`` steps on independently shuffled A and B batches; checkpoint; resume exactly.

    Returns:
        The :class:`experiments._common.TrainingRun` (finished, or interrupted by ``stop_after_steps``).
    """
    a_all, b_all = jnp.asarray(ds.train_a.images), jnp.asarray(ds.train_b.images)
    bs = cfg["batch_size"]
    k_init, k_loop = jax.random.split(jax.random.key(seed))
    translate_cyclegan.check_batch(config, {"a": ds.train_a.images, "b": ds.train_b.images})  # every epoch's, once
    state = translate_cyclegan.create_state(k_init, config, {"a": a_all[:bs], "b": b_all[:bs]})
    train_step = parallel.data_parallel_over_devices(translate_cyclegan.train_step, bs, batch_argnums=2)

    def permute(epoch):
        ka, kb = jax.random.split(jax.random.fold_in(k_loop, epoch))
        return jax.random.permutation(ka, a_all.shape[0]), jax.random.permutation(kb, b_all.shape[0])

    batches = common.EpochBatches(permute, min(a_all.shape[0], b_all.shape[0]) // bs, bs)

    def step_fn(state, step):
        idx_a, idx_b = batches(step)
        return train_step(config, state, {"a": a_all[idx_a], "b": b_all[idx_b]})

    def on_log(state, done, window, run):
        h = run.history
        h.setdefault("g_loss", []).append(float(jnp.mean(window["g_loss"])))
        h.setdefault("d_loss", []).append(float(jnp.mean(window["d_loss"])))
        h.setdefault("cycle", []).append(float(jnp.mean((window["cycle_a"] + window["cycle_b"]) / 2)))
        return common.LogResult(postfix=dict(g=f"{h['g_loss'][-1]:.3f}", d=f"{h['d_loss'][-1]:.3f}",
                                      cycle=f"{h['cycle'][-1]:.4f}"))

    return common.train_loop(state, step_fn, num_steps=cfg["steps"], log_every=cfg["eval_every"],
                      checkpoint_dir=os.path.join(out, "checkpoints", "cyclegan"), on_log=on_log, resume=resume,
                      stop_after=stop_after_steps, progress=progress, desc="cyclegan",
                      run_info={"seed": seed, "config": cfg, "model": config}, force=force, raise_on_divergence=True)


def _batched(fn, images, batch_size=500):
    return np.concatenate([np.asarray(fn(jnp.asarray(images[i: i + batch_size])))
                           for i in range(0, len(images), batch_size)])


def evaluate(config: translate_cyclegan.CycleGANConfig, state, ds, classifier):
    """Class preservation, cycle error, realism and L1 to the true translation, both directions; with the
    translations themselves ``(fake_b, fake_a, cycle_a, cycle_b)`` for the figures."""
    a, b = ds.test_a.images, ds.test_b.images
    labels = ds.test_a.labels

    def mapped(direction):
        return lambda x: translate_cyclegan.translate(config, state, x, direction=direction)

    fake_b = _batched(mapped("ab"), a)
    fake_a = _batched(mapped("ba"), b)
    cycle_a = _batched(mapped("ba"), fake_b)
    cycle_b = _batched(mapped("ab"), fake_a)
    out = {}
    for direction, fake, cyc, src, tgt in (("a_to_b", fake_b, cycle_a, a, b), ("b_to_a", fake_a, cycle_b, b, a)):
        out[direction] = {
            "class_preservation": metrics.class_preservation(classifier, fake, labels),
            "cycle_l1": metrics.cycle_reconstruction_error(src, cyc),
            "frechet_distance": metrics.translation_frechet_distance(classifier, fake, tgt),
            "l1_to_true_translation": float(np.mean(np.abs(fake - tgt))),
            "l1_identity_baseline": float(np.mean(np.abs(src - tgt))),
        }
    out["reference"] = {
        "classifier_accuracy_a": metrics.class_preservation(classifier, a, labels),
        "classifier_accuracy_b": metrics.class_preservation(classifier, b, labels),
        "frechet_distance_a_vs_b": metrics.translation_frechet_distance(classifier, a, b),
    }
    return out, (fake_b, fake_a, cycle_a, cycle_b)


def make_figures(out: str, ds, outputs, info):
    plt = common.pyplot()
    fake_b, fake_a, cycle_a, cycle_b = outputs
    idx = np.arange(0, len(ds.test_a), len(ds.test_a) // 10)[:10]
    fig, axes = plt.subplots(1, 2, figsize=(7, 5))
    for ax, (title, src, fake, cyc, true) in zip(axes, (
        ("A -> B (original -> bold)", ds.test_a.images, fake_b, cycle_a, ds.test_b.images),
        ("B -> A (bold -> original)", ds.test_b.images, fake_a, cycle_b, ds.test_a.images),
    )):
        ax.imshow(common.colour_grid([[src[i], fake[i], cyc[i], true[i]] for i in idx]), interpolation="nearest")
        ax.set_title(f"{title}\ninput | translation | cycle back | true", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    common.save_figure(fig, os.path.join(out, "translations.png"), dpi=100)
    h = info["history"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].plot(h["step"], h["g_loss"], label="G"), axes[0].plot(h["step"], h["d_loss"], label="D")
    axes[0].set_xlabel("step"), axes[0].legend(), axes[0].set_title("losses", fontsize=9)
    axes[1].semilogy(h["step"], h["cycle"]), axes[1].set_xlabel("step")
    axes[1].set_title("cycle L1 (training batches)", fontsize=9)
    fig.tight_layout()
    common.save_figure(fig, os.path.join(out, "training_curves.png"), dpi=100, tight=False)


def main(argv=None):
    parser = common.training_parser(__doc__.split("\n")[0], out="runs/cyclegan", quick_help="tiny config, seconds of training",
                             classifier_dir="runs/translation_classifier")
    args = common.parse_training_args(parser, argv)

    t_start = time.time()
    cfg = common.experiment_config(args, default_config, quick_config)
    os.makedirs(args.out, exist_ok=True)
    progress = not args.no_progress
    ds = data.thin_thick_digits(size=16, seed=args.seed)
    classifier, cls_info = common.translation_classifier(args.classifier_dir, cfg, seed=args.seed, progress=progress)
    config = translate_cyclegan.CycleGANConfig(channels_a=1, channels_b=1, image_size=16, **cfg["model"])
    run = fit(config, ds, cfg, seed=args.seed, out=args.out, resume=args.resume,
              stop_after_steps=args.stop_after_steps, progress=progress, force=args.force)
    if run.status == "interrupted":
        print(common.interrupted_message("cyclegan", run))
        return None
    info = {"steps": cfg["steps"], "train_seconds": round(run.progress.seconds, 1), "history": run.progress.history}
    test, outputs = evaluate(config, run.state, ds, classifier)
    make_figures(args.out, ds, outputs, info)
    results = {
        "config": cfg,
        "seed": args.seed,
        "data": {"name": ds.name, "train_a": len(ds.train_a), "train_b": len(ds.train_b),
                 "test": len(ds.test_a), "image_size": 16},
        "classifier": common.classifier_summary(cls_info),
        "model": info,
        "test": test,
        "wall_seconds": round(time.time() - t_start, 1),
    }
    results = common.write_results(args.out, results)
    print(json.dumps({"test": test, "train_seconds": info["train_seconds"]}, indent=1))
    return results


if __name__ == "__main__":
    main()
