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
``--classifier-dir`` (shared with :mod:`experiments.bicyclegan`).
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bicyclegan import grid, translation_classifier
from experiments._common import parse_training_args, training_parser
from gm import data, parallel
from gm.deep import metrics, train, translate


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


def fit(config: translate.CycleGANConfig, ds, cfg: dict, *, seed: int, out: str, resume: bool,
        stop_after_steps: int | None, progress: bool = True):
    """Train for ``cfg["steps"]`` steps on independently shuffled A and B batches; checkpoint; resume exactly."""
    from tqdm.auto import tqdm

    a_all, b_all = jnp.asarray(ds.train_a.images), jnp.asarray(ds.train_b.images)
    bs = cfg["batch_size"]
    per_epoch = min(a_all.shape[0], b_all.shape[0]) // bs
    k_init, k_loop = jax.random.split(jax.random.key(seed))
    state = translate.create_cyclegan_state(k_init, config, {"a": a_all[:bs], "b": b_all[:bs]})
    train_step = parallel.data_parallel_over_devices(translate.cyclegan_train_step, bs)  # itself on one device
    history = {"step": [], "g_loss": [], "d_loss": [], "cycle": [], "seconds": []}
    start, elapsed = 0, 0.0
    ckpt_dir = os.path.join(out, "checkpoints", "cyclegan")
    if resume and train.latest_checkpoint_step(ckpt_dir) is not None:
        state, meta = train.restore_checkpoint(ckpt_dir, state)
        start, elapsed, history = meta["step"], meta["seconds"], meta["history"]
    total = cfg["steps"]
    bar = tqdm(total=total, initial=start, desc="cyclegan", disable=not progress, leave=True)
    running = {"g_loss": [], "d_loss": [], "cycle": []}
    perm_a = perm_b = None
    t0 = time.time()
    for step in range(start, total):
        epoch, within = divmod(step, per_epoch)
        if perm_a is None or within == 0:
            ka, kb = jax.random.split(jax.random.fold_in(k_loop, epoch))
            perm_a, perm_b = jax.random.permutation(ka, a_all.shape[0]), jax.random.permutation(kb, b_all.shape[0])
        sl = slice(within * bs, (within + 1) * bs)
        state, m = train_step(state, {"a": a_all[perm_a[sl]], "b": b_all[perm_b[sl]]}, None)
        running["g_loss"].append(m["g_loss"])
        running["d_loss"].append(m["d_loss"])
        running["cycle"].append((m["cycle_a"] + m["cycle_b"]) / 2)
        bar.update(1)
        done = step + 1
        if done % cfg["eval_every"] == 0 or done == total:
            elapsed += time.time() - t0
            t0 = time.time()
            history["step"].append(done)
            for k in running:
                history[k].append(float(jnp.mean(jnp.stack(running[k]))))
                running[k] = []
            history["seconds"].append(round(elapsed, 1))
            bar.set_postfix(g=f"{history['g_loss'][-1]:.3f}", d=f"{history['d_loss'][-1]:.3f}",
                            cycle=f"{history['cycle'][-1]:.4f}")
            train.save_checkpoint(ckpt_dir, done, state, {"step": done, "seconds": elapsed, "history": history})
            if stop_after_steps is not None and done >= stop_after_steps and done < total:
                bar.close()
                return None, {"interrupted_at_step": done}
    bar.close()
    return state, {"steps": total, "train_seconds": round(elapsed, 1), "history": history}


def _batched(fn, images, batch_size=500):
    return np.concatenate([np.asarray(fn(jnp.asarray(images[i: i + batch_size])))
                           for i in range(0, len(images), batch_size)])


def evaluate(state, ds, classifier) -> dict:
    """Class preservation, cycle error, realism and L1 to the true translation, both directions."""
    a, b = ds.test_a.images, ds.test_b.images
    labels = ds.test_a.labels
    fake_b = _batched(lambda x: translate.cyclegan_translate(state, x, direction="ab"), a)
    fake_a = _batched(lambda x: translate.cyclegan_translate(state, x, direction="ba"), b)
    cycle_a = _batched(lambda x: translate.cyclegan_translate(state, x, direction="ba"), fake_b)
    cycle_b = _batched(lambda x: translate.cyclegan_translate(state, x, direction="ab"), fake_a)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fake_b, fake_a, cycle_a, cycle_b = outputs
    idx = np.arange(0, len(ds.test_a), len(ds.test_a) // 10)[:10]
    fig, axes = plt.subplots(1, 2, figsize=(7, 5))
    for ax, (title, src, fake, cyc, true) in zip(axes, (
        ("A -> B (original -> bold)", ds.test_a.images, fake_b, cycle_a, ds.test_b.images),
        ("B -> A (bold -> original)", ds.test_b.images, fake_a, cycle_b, ds.test_a.images),
    )):
        ax.imshow(grid([[src[i], fake[i], cyc[i], true[i]] for i in idx]), interpolation="nearest")
        ax.set_title(f"{title}\ninput | translation | cycle back | true", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "translations.png"), dpi=100, bbox_inches="tight")
    plt.close(fig)
    h = info["history"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].plot(h["step"], h["g_loss"], label="G"), axes[0].plot(h["step"], h["d_loss"], label="D")
    axes[0].set_xlabel("step"), axes[0].legend(), axes[0].set_title("losses", fontsize=9)
    axes[1].semilogy(h["step"], h["cycle"]), axes[1].set_xlabel("step")
    axes[1].set_title("cycle L1 (training batches)", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "training_curves.png"), dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = training_parser(__doc__.split("\n")[0], out="runs/cyclegan", quick_help="tiny config, seconds of training",
                             classifier_dir="runs/translation_classifier")
    args = parse_training_args(parser, argv)

    t_start = time.time()
    cfg = quick_config() if args.quick else default_config()
    if args.steps is not None:
        cfg["steps"] = args.steps
    os.makedirs(args.out, exist_ok=True)
    progress = not args.no_progress
    ds = data.thin_thick_digits(size=16, seed=args.seed)
    classifier, cls_info = translation_classifier(args.classifier_dir, cfg, seed=args.seed, progress=progress)
    config = translate.CycleGANConfig(channels_a=1, channels_b=1, image_size=16, **cfg["model"])
    state, info = fit(config, ds, cfg, seed=args.seed, out=args.out, resume=args.resume,
                      stop_after_steps=args.stop_after_steps, progress=progress)
    if state is None:
        print(f"cyclegan: stopped after step {info['interrupted_at_step']} (--stop-after-steps); "
              "continue with --resume")
        return None
    test, outputs = evaluate(state, ds, classifier)
    make_figures(args.out, ds, outputs, info)
    results = {
        "config": cfg,
        "seed": args.seed,
        "data": {"name": ds.name, "train_a": len(ds.train_a), "train_b": len(ds.train_b),
                 "test": len(ds.test_a), "image_size": 16},
        "classifier": {k: cls_info.get(k) for k in ("test_accuracy", "train_seconds", "cached")},
        "model": info,
        "test": test,
        "wall_seconds": round(time.time() - t_start, 1),
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    print(json.dumps({"test": test, "train_seconds": info["train_seconds"]}, indent=1))
    return results


if __name__ == "__main__":
    main()
