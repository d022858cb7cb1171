"""pix2pix, pix2pix + noise, cAE-GAN, cVAE-GAN, cLR-GAN and BicycleGAN on one multimodal paired set.

The lecture's question: one input, many plausible outputs. The data (:func:`gm.data.edges_to_coloured_digits`)
maps the outline of a real MNIST digit (16x16) to the digit drawn in one of 4 colours, the colour drawn
at random and hidden from the input. Every model has the same U-Net generator (z tiled onto the input and
every down-sampling layer), the same conditional PatchGAN and the same encoder; they differ only in their
losses (:mod:`gm.deep.translate_paired`). On the 1,000 held-out outlines each model is measured for

* realism: Frechet distance to the real coloured test digits in a digit classifier's features, channel by
  channel (so colour counts as well as shape), with one ``z ~ N(0, I)`` per input;
* faithfulness: class preservation (the classifier, reading the output in grey, finds the source digit)
  and shape L1 (grey output vs grey ground truth; the colour is not recoverable from the input);
* diversity: mean pairwise L1 between 10 outputs per input (200 inputs), and how many of the 4 colours
  those 10 outputs use on average;
* latent recovery ``|mu(G(x, z)) - z|`` (models with an encoder);
* the same realism and faithfulness with the code encoded from the ground truth, ``z = mu(y)`` (models
  with an encoder): the gap between prior-z FD and encoded-z FD shows whether prior samples fall off the
  codes the generator was trained on (the BicycleGAN paper's case against cVAE-GAN), and the encoded-z
  L1 whether the model can reproduce the ground truth at all (its case against cLR-GAN).

Run ``python -m experiments.bicyclegan --model {pix2pix,pix2pix_noise,cae_gan,cvae_gan,clr_gan,bicyclegan,all}
[--quick] [--out runs/bicyclegan] [--resume] [--seeds 0 1 2]``. With ``--seeds`` each training seed writes
into ``<out>/seed_<s>/`` and ``summary.md`` / ``summary.json`` in ``--out`` give mean +- sd over every
seed directory present (the data and the classifier stay those of ``--data-seed``). Models run one after another write into the same
``--out``; ``results.json`` keeps every model's entry and ``comparison.md`` / ``comparison.png`` hold the
table of all models present. Figures: ``samples_<model>.png`` (input, ground truth, 6 samples per row),
``diversity_<model>.png`` (diversity during training). Checkpoints: ``checkpoints/<model>`` (orbax);
the classifier is cached in ``--classifier-dir`` (default ``runs/translation_classifier``).
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
from gm.data import translation as tdata
from gm.deep import metrics, translate_paired

MODELS = translate_paired.PAIRED_MODELS


def default_config() -> dict:
    """The full run: 2 to 9 minutes per model on 2 CPU cores (shared, load 7 to 9)."""
    return dict(
        steps=4000,
        batch_size=32,
        eval_every=250,
        # Adam at 5e-4 rather than the published 2e-4: 4,000 steps are 32 epochs of 4,000 pairs. The rate is
        # constant for the first half and decays linearly to 0 over the second (the published niter /
        # niter_decay schedule, at the same fraction for every model).
        decay_fraction=0.5,
        model=dict(latent_dim=8, generator_features=(16, 32, 64), encoder_features=(16, 32),
                   discriminator_features=(16, 32), inject="all", learning_rate=5e-4),
        n_eval=1000,
        n_diversity_inputs=200,
        n_diversity_samples=10,
        n_monitor=32,
        classifier=dict(image_shape=(16, 16, 1), epochs=8, max_shift=1),
        min_classifier_accuracy=0.95,
    )


def quick_config() -> dict:
    """A smoke test of every code path: a few seconds of training per model."""
    config = default_config()
    config.update(
        steps=6,
        batch_size=16,
        eval_every=3,
        model=dict(latent_dim=4, generator_features=(8, 16), encoder_features=(8,),
                   discriminator_features=(8,), inject="all", learning_rate=5e-4),
        n_eval=100,
        n_diversity_inputs=8,
        n_diversity_samples=3,
        n_monitor=8,
        classifier=dict(image_shape=(16, 16, 1), epochs=1, features=(8, 16), hidden=32, max_shift=1),
        min_classifier_accuracy=0.0,
    )
    return config


# ------------------------------------------------------------------------------------------ training


def _dominant_colours(images) -> np.ndarray:
    """Index of the nearest :data:`gm.data.PALETTE` colour to each image's mean colour over its bright pixels."""
    images = np.asarray(images, np.float32)
    flat = images.reshape(-1, images.shape[-3] * images.shape[-2], 3)
    weight = flat.max(-1, keepdims=True)
    mean = (flat * weight).sum(1) / np.maximum(weight.sum(1), 1e-6)
    mean /= np.maximum(mean.max(-1, keepdims=True), 1e-6)
    palette = data.PALETTE
    d = ((mean[:, None, :] - palette[None]) ** 2).sum(-1)
    return d.argmin(-1).reshape(images.shape[:-3])


def fit(name: str, config: translate_paired.TranslationConfig, ds, cfg: dict, *, seed: int, out: str,
        resume: bool, stop_after_steps: int | None, progress: bool = True, force: bool = False):
    """Train one model for ``cfg["steps"]`` steps; checkpoint every ``eval_every``; resume exactly.

    Every ``eval_every`` steps the diversity of ``n_monitor`` test inputs (4 samples each) is logged, the
    check that the generator has not learned to ignore ``z``.

    Returns:
        The :class:`experiments._common.TrainingRun` (finished, or interrupted by ``stop_after_steps``).
    """
    inputs, targets = jnp.asarray(ds.train.inputs), jnp.asarray(ds.train.targets)
    n, bs = inputs.shape[0], cfg["batch_size"]
    base = jax.random.fold_in(jax.random.key(seed), MODELS.index(name))
    k_init, k_loop, k_monitor = jax.random.split(base, 3)
    translate_paired.check_batch(config, {"input": ds.train.inputs, "target": ds.train.targets})  # every epoch's, once
    state = translate_paired.create_state(k_init, config, {"input": inputs[:bs], "target": targets[:bs]})
    train_step = parallel.data_parallel_over_devices(translate_paired.train_step, bs, batch_argnums=3)
    batches = common.EpochBatches(lambda epoch: jax.random.permutation(jax.random.fold_in(k_loop, epoch), n), n // bs, bs)
    monitor = jnp.asarray(ds.test.inputs[: cfg["n_monitor"]])

    def step_fn(state, step):
        idx = batches(step)
        return train_step(jax.random.fold_in(k_loop, 10_000_000 + step), config, state,
                          {"input": inputs[idx], "target": targets[idx]})

    def on_log(state, done, window, run):
        div = metrics.pairwise_diversity(translate_paired.sample(k_monitor, config, state, monitor, 4))
        for k in ("d_loss", "g_loss"):
            run.history.setdefault(k, []).append(float(jnp.mean(window[k])))
        run.history.setdefault("diversity", []).append(div)
        return common.LogResult(postfix=dict(d=f"{run.history['d_loss'][-1]:.3f}", g=f"{run.history['g_loss'][-1]:.3f}",
                                      div=f"{div:.3f}"))

    return common.train_loop(state, step_fn, num_steps=cfg["steps"], log_every=cfg["eval_every"],
                      checkpoint_dir=os.path.join(out, "checkpoints", name), on_log=on_log, resume=resume,
                      stop_after=stop_after_steps, progress=progress, desc=name,
                      run_info={"seed": seed, "config": cfg, "model": config}, force=force, raise_on_divergence=True)


# ---------------------------------------------------------------------------------------- evaluation


def evaluate(config: translate_paired.TranslationConfig, state, ds, classifier, cfg: dict, key) -> dict:
    """Realism, faithfulness, diversity and latent recovery of one trained model on the test split."""
    k_z, k_div, k_lat = jax.random.split(key, 3)
    n = min(cfg["n_eval"], len(ds.test))
    x = jnp.asarray(ds.test.inputs[:n])
    y = np.asarray(ds.test.targets[:n])
    labels = ds.test.labels[:n]
    z = jax.random.normal(k_z, (n, config.latent_dim))
    out = np.asarray(translate_paired.translate(config, state, x, z))
    result = {
        "frechet_distance": metrics.translation_frechet_distance(classifier, out, y),
        "class_preservation": metrics.class_preservation(classifier, out, labels),
        "shape_l1": float(np.mean(np.abs(tdata.to_grey(out) - tdata.to_grey(y)))),
        "l1_to_target": float(np.mean(np.abs(out - y))),
    }
    m = min(cfg["n_diversity_inputs"], n)
    samples = np.asarray(translate_paired.sample(k_div, config, state, x[:m], cfg["n_diversity_samples"]))
    result["diversity"] = metrics.pairwise_diversity(samples)
    colours = _dominant_colours(samples)
    result["colours_per_input"] = float(np.mean([len(set(c.tolist())) for c in colours]))
    result["colour_histogram"] = [float(v) for v in np.bincount(colours.ravel(), minlength=len(data.PALETTE))
                                  / colours.size]
    if config.has_encoder:
        z_lat = jax.random.normal(k_lat, (n, config.latent_dim))
        recovered = translate_paired.encode(config, state, translate_paired.translate(config, state, x, z_lat))
        result["latent_recovery_error"] = metrics.latent_recovery_error(recovered, z_lat)
        encoded = np.asarray(translate_paired.translate(config, state, x,
                                                        translate_paired.encode(config, state, jnp.asarray(y))))
        result["l1_with_encoded_z"] = float(np.mean(np.abs(encoded - y)))
        result["frechet_distance_encoded"] = metrics.translation_frechet_distance(classifier, encoded, y)
        result["class_preservation_encoded"] = metrics.class_preservation(classifier, encoded, labels)
        result["frechet_distance_gap"] = result["frechet_distance"] - result["frechet_distance_encoded"]
    return result


TABLE_COLUMNS = (
    ("frechet_distance", "FD, z ~ N(0, I)"),
    ("frechet_distance_encoded", "FD, z = E(y)"),
    ("frechet_distance_gap", "FD gap"),
    ("class_preservation", "class kept"),
    ("class_preservation_encoded", "class kept, z = E(y)"),
    ("shape_l1", "shape L1"),
    ("l1_with_encoded_z", "L1, z = E(y)"),
    ("diversity", "diversity"),
    ("colours_per_input", "colours / 10 samples"),
    ("latent_recovery_error", "abs(E(G(x,z)) - z)"),
)
PERCENT_COLUMNS = ("class_preservation", "class_preservation_encoded")


def _cell(key: str, values) -> str:
    """``values``: one number, or the list of one number per seed (mean +- sample sd)."""
    if values is None or (isinstance(values, list) and not values):
        return "-"
    scale, fmt = (100.0, "{:.1f}%") if key in PERCENT_COLUMNS else (1.0, "{:.3f}")
    if not isinstance(values, list):
        return fmt.format(scale * values)
    v = scale * np.asarray(values, np.float64)
    if len(v) == 1:
        return fmt.format(v[0])
    return fmt.format(v.mean()).rstrip("%") + " ± " + fmt.format(v.std(ddof=1))


def comparison_table(results: dict) -> str:
    """Markdown table of every evaluated model (rows in :data:`MODELS` order)."""
    head = "| model | " + " | ".join(title for _, title in TABLE_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(TABLE_COLUMNS) + 1)]
    for name in MODELS:
        if name not in results.get("test", {}):
            continue
        r = results["test"][name]
        cells = [_cell(key, r.get(key)) for key, _ in TABLE_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ref = results.get("reference", {})
    if ref:
        lines.append("")
        lines.append(f"Reference: FD between the test targets and a random recolouring of them "
                     f"(same shapes, fresh colours) = {ref['frechet_distance_recoloured']:.3f}; "
                     f"diversity of the true conditional (each input in all 4 colours, 10 draws) = "
                     f"{ref['diversity_true']:.3f}.")
    return "\n".join(lines) + "\n"


def make_figures(out: str, name: str, config, state, ds, info: dict, key):
    plt = common.pyplot()
    k = 8
    x = jnp.asarray(ds.test.inputs[:: len(ds.test) // k][:k])
    y = ds.test.targets[:: len(ds.test) // k][:k]
    s = np.asarray(translate_paired.sample(key, config, state, x, 6))
    rows = [[np.asarray(x[i]), y[i], *s[i]] for i in range(k)]
    fig, ax = plt.subplots(figsize=(5, 5.3))
    ax.imshow(common.colour_grid(rows), interpolation="nearest")
    ax.set_title(f"{name}: input, ground truth, 6 samples (z ~ N(0, I))", fontsize=9)
    ax.axis("off")
    common.save_figure(fig, os.path.join(out, f"samples_{name}.png"), dpi=100)
    h = info["history"]
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(h["step"], h["diversity"], marker=".")
    ax.set_xlabel("step"), ax.set_ylabel("pairwise L1 (32 inputs, 4 z)")
    ax.set_title(f"{name}: diversity during training", fontsize=9)
    fig.tight_layout()
    common.save_figure(fig, os.path.join(out, f"diversity_{name}.png"), dpi=100, tight=False)


def comparison_figure(out: str, results: dict):
    plt = common.pyplot()
    names = [m for m in MODELS if m in results.get("test", {})]
    if not names:
        return
    fd = [results["test"][m]["frechet_distance"] for m in names]
    div = [results["test"][m]["diversity"] for m in names]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(div, fd)
    for m, a, b in zip(names, div, fd):
        ax.annotate(m, (a, b), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("diversity (mean pairwise L1, higher = more diverse)")
    ax.set_ylabel("Frechet distance (lower = more realistic)")
    ax.set_title("Realism vs diversity on edges -> coloured digits", fontsize=9)
    fig.tight_layout()
    common.save_figure(fig, os.path.join(out, "comparison.png"), dpi=100, tight=False)


def reference_numbers(ds, classifier, seed: int = 0) -> dict:
    """What a perfect model would score: FD of a re-coloured copy of the targets, true diversity."""
    rng = np.random.default_rng(seed)
    y = ds.test.targets
    grey = tdata.to_grey(y)
    recoloured = tdata.colourize(grey, data.PALETTE[rng.integers(0, ds.n_modes, len(y))])
    m = 200
    draws = rng.integers(0, ds.n_modes, (m, 10))
    true_samples = np.stack([tdata.colourize(np.repeat(grey[i:i + 1], 10, 0), data.PALETTE[draws[i]])
                             for i in range(m)])
    return {"frechet_distance_recoloured": metrics.translation_frechet_distance(classifier, recoloured, y),
            "diversity_true": metrics.pairwise_diversity(true_samples)}


# ---------------------------------------------------------------------------------------------- main


def run(args, cfg: dict, ds, classifier, cls_info: dict, *, seed: int, out: str, progress: bool):
    """Train and evaluate ``args.model`` (or all models) with training seed ``seed``, writing into ``out``.

    Returns:
        the results dict, or ``None`` when stopped by ``--stop-after-steps``.
    """
    t_start = time.time()
    models = list(MODELS) if args.model == "all" else [args.model]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "results.json")
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    results.setdefault("models", {})
    results.setdefault("test", {})
    results.update(
        config=cfg, seed=seed, data_seed=args.data_seed,
        data={"name": ds.name, "train": len(ds.train), "test": len(ds.test), "image_size": 16,
              "n_colours": ds.n_modes},
        classifier=common.classifier_summary(cls_info),
    )
    if "reference" not in results:
        results["reference"] = reference_numbers(ds, classifier, args.data_seed)

    root = jax.random.key(seed)
    decay_steps = int(round(cfg.get("decay_fraction", 0.0) * cfg["steps"]))
    for name in models:
        config = translate_paired.TranslationConfig(model=name, in_channels=1, out_channels=3, image_size=16,
                                                    total_steps=cfg["steps"], decay_steps=decay_steps, **cfg["model"])
        run = fit(name, config, ds, cfg, seed=seed, out=out, resume=args.resume,
                  stop_after_steps=args.stop_after_steps, progress=progress, force=args.force)
        if run.status == "interrupted":
            print(common.interrupted_message(name, run))
            return None
        k_eval, k_fig = jax.random.split(jax.random.fold_in(root, 100 + MODELS.index(name)))
        info = {"steps": cfg["steps"], "train_seconds": round(run.progress.seconds, 1),
                "history": run.progress.history}
        results["models"][name] = info
        results["test"][name] = evaluate(config, run.state, ds, classifier, cfg, k_eval)
        make_figures(out, name, config, run.state, ds, info, k_fig)
        results["wall_seconds"] = round(time.time() - t_start, 1)
        results = common.write_results(path, results)
        with open(os.path.join(out, "comparison.md"), "w") as f:
            f.write(comparison_table(results))
        comparison_figure(out, results)
        print(json.dumps({name: results["test"][name], "train_seconds": info["train_seconds"]}, indent=1))
    print(comparison_table(results))
    return results


def summarize(per_seed: list[dict]) -> dict:
    """Collect several seeds' ``results.json`` into one: every test metric as the list of its per-seed values.

    Args:
        per_seed: results dicts (as :func:`run` writes them), one per training seed.

    Returns:
        ``{"seeds": [...], "test": {model: {metric: [values in seed order]}}, "train_seconds": {model: [...]},
        "reference": ...}``; a model appears with the seeds that trained it.
    """
    per_seed = sorted(per_seed, key=lambda r: r["seed"])
    summary = {"seeds": [r["seed"] for r in per_seed], "test": {}, "train_seconds": {}, "n_seeds": {}}
    for name in MODELS:
        runs = [r for r in per_seed if name in r.get("test", {})]
        if not runs:
            continue
        keys = [k for k in runs[0]["test"][name] if isinstance(runs[0]["test"][name][k], (int, float))]
        summary["test"][name] = {k: [float(r["test"][name][k]) for r in runs] for k in keys}
        summary["train_seconds"][name] = [r["models"][name]["train_seconds"] for r in runs]
        summary["n_seeds"][name] = [r["seed"] for r in runs]
    if per_seed and "reference" in per_seed[0]:
        summary["reference"] = per_seed[0]["reference"]
    return summary


def write_summary(out: str) -> dict | None:
    """Summarize every ``<out>/seed_*/results.json`` into ``summary.json``, ``summary.md``, ``comparison.png``."""
    per_seed = []
    for entry in sorted(os.listdir(out)):
        path = os.path.join(out, entry, "results.json")
        if entry.startswith("seed_") and os.path.exists(path):
            with open(path) as f:
                per_seed.append(json.load(f))
    if not per_seed:
        return None
    summary = summarize(per_seed)
    common.write_results(os.path.join(out, "summary.json"), summary)
    seeds = ", ".join(f"{m}: {len(v)}" for m, v in summary["n_seeds"].items())
    table = comparison_table(summary) + f"\nmean ± sd over training seeds (seeds per model: {seeds}).\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(table)
    means = {"test": {m: {k: float(np.mean(v)) for k, v in r.items()} for m, r in summary["test"].items()}}
    comparison_figure(out, means)
    print(table)
    return summary


def main(argv=None):
    parser = common.training_parser(__doc__.split("\n")[0], out="runs/bicyclegan", quick_help="tiny config, seconds per model",
                             seed_help="training seed (without --seeds)", classifier_dir="runs/translation_classifier")
    parser.add_argument("--model", default="bicyclegan", choices=[*MODELS, "all"])
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train with each of these seeds into <out>/seed_<s>/ and summarize all seeds present")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the colour draws and the classifier")
    args = common.parse_training_args(parser, argv)

    cfg = common.experiment_config(args, default_config, quick_config)
    progress = not args.no_progress
    ds = data.edges_to_coloured_digits(size=16, seed=args.data_seed)
    classifier, cls_info = common.translation_classifier(args.classifier_dir, cfg, seed=args.data_seed, progress=progress)
    if args.seeds is None:
        return run(args, cfg, ds, classifier, cls_info, seed=args.seed, out=args.out, progress=progress)
    for seed in args.seeds:
        if run(args, cfg, ds, classifier, cls_info, seed=seed, out=os.path.join(args.out, f"seed_{seed}"),
               progress=progress) is None:
            return None
    return write_summary(args.out)


if __name__ == "__main__":
    main()
