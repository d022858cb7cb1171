"""The one small runner every training experiment uses.

* flags: :func:`training_parser` (output, resume, seed, quick, progress, hosts) and
  :func:`parse_training_args`; the config: :func:`experiment_config` (quick or default, ``--steps``);
* the resumable training loop: :func:`train_loop` runs ``step_fn`` with a tqdm progress bar, hands every
  logging window's metrics to the experiment, keeps the best state if asked, checkpoints with orbax and
  resumes exactly (:class:`EpochBatches` gives every step its shuffled batch, whatever step a run resumes
  at);
* the digit classifier that judges the samples, trained once and cached (:func:`load_classifier`,
  :func:`translation_classifier`) and the sample metrics built on it (:func:`sample_metrics`);
* results: :func:`write_results` (the one ``results.json`` serialiser: numpy and JAX scalars and arrays,
  tuples and dataclasses to JSON);
* figures: :func:`pyplot` (matplotlib without a display), :func:`save_figure`, and the image grids
  :func:`grey_grid` and :func:`colour_grid`.

Experiments never import each other: what two of them share lives here (or in ``gm``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gm import parallel

__all__ = [
    "median_seconds",
    "training_parser",
    "parse_training_args",
    "experiment_config",
    "EpochBatches",
    "LogResult",
    "RunProgress",
    "TrainingRun",
    "TrainingDiverged",
    "train_loop",
    "interrupted_message",
    "load_classifier",
    "translation_classifier",
    "classifier_summary",
    "SampleMetrics",
    "sample_metrics",
    "to_json",
    "write_results",
    "pyplot",
    "save_figure",
    "grey_grid",
    "colour_grid",
]


def median_seconds(fn, repeats: int, *, warmup: bool = True) -> float:
    """Median wall seconds of ``fn()`` (its outputs waited for) over ``repeats`` calls, after one
    warm-up call (compilation) unless ``warmup`` is False."""
    import jax

    if warmup:
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------- flags, config


def training_parser(description: str, *, out: str | None, quick_help: str, seed_help: str | None = None,
                    steps_help: str | None = "override the number of training steps",
                    classifier_dir: str | None = None, stop_unit: str = "steps") -> argparse.ArgumentParser:
    """An argument parser with the flags of a resumable training run; the caller adds its own.

    Args:
      description: the parser's description.
      out: default ``--out`` directory (None: the experiment derives one).
      quick_help: help text of ``--quick``.
      seed_help: help text of ``--seed`` (default 0).
      steps_help: help text of ``--steps``; None leaves the flag out.
      classifier_dir: default ``--classifier-dir`` (None: ``OUT/classifier``).
      stop_unit: ``--stop-after-<unit>`` stops the run as if interrupted (for resume tests).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", default=out,
                        help=None if out is not None else "output directory (default under runs/)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    if steps_help is not None:
        parser.add_argument("--steps", type=int, default=None, help=steps_help)
    parser.add_argument("--classifier-dir", default=classifier_dir,
                        help=None if classifier_dir is not None else "classifier cache (default: OUT/classifier)")
    parser.add_argument(f"--stop-after-{stop_unit}", type=int, default=None,
                        help=f"stop after this many {stop_unit}, as if interrupted (for resume tests)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--force", action="store_true",
                        help="with --resume: continue even if the checkpoints were written with another seed, size "
                             "or config")
    parallel.add_distributed_args(parser)
    return parser


def parse_training_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv`` and join the distributed run the flags describe (a no-op on one host)."""
    args = parser.parse_args(argv)
    parallel.initialize_from_args(args)
    return args


def experiment_config(args: argparse.Namespace, default_config: Callable[..., dict],
                      quick_config: Callable[..., dict], *config_args) -> dict:
    """The run's config: ``quick_config(*config_args)`` with ``--quick``, else ``default_config(...)``;
    ``--steps`` (when the parser has it and it is given) replaces ``"steps"``."""
    cfg = (quick_config if args.quick else default_config)(*config_args)
    if getattr(args, "steps", None) is not None:
        cfg["steps"] = args.steps
    return cfg


# ------------------------------------------------------------------------------------- the training loop


class EpochBatches:
    """The batch indices of every global step: a fresh permutation of the examples per epoch.

    ``permute(epoch)`` draws the epoch's permutation (or a pytree of permutations, for experiments that
    shuffle several sets); step ``s`` of the run takes the slice ``within * batch_size : (within + 1) *
    batch_size`` of epoch ``s // steps_per_epoch``, ``within = s % steps_per_epoch``. The current epoch's
    permutation is cached, so a run resumed at any step draws exactly the batches of an uninterrupted one.
    """

    def __init__(self, permute: Callable[[int], Any], steps_per_epoch: int, batch_size: int):
        if steps_per_epoch < 1:
            raise ValueError(f"an epoch needs at least one batch of {batch_size}, got {steps_per_epoch} steps")
        self.permute, self.steps_per_epoch, self.batch_size = permute, steps_per_epoch, batch_size
        self._epoch, self._perm = None, None

    def __call__(self, step: int):
        """The indices (or pytree of indices) of the batch of global step ``step``."""
        import jax

        epoch, within = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, self.permute(epoch)
        part = slice(within * self.batch_size, (within + 1) * self.batch_size)
        return jax.tree.map(lambda perm: perm[part], self._perm)


class LogResult(NamedTuple):
    """What an experiment decides at the end of a logging window (the return value of ``on_log``).

    Attributes:
        new_best: keep the current state as the best so far (with ``keep_best``).
        finished: the run is complete here (early stopping); it is checkpointed and ends.
        diverged: why training cannot go on; the run ends without a checkpoint of this state.
        postfix: values to show on the progress bar.
    """

    new_best: bool = False
    finished: bool = False
    diverged: str | None = None
    postfix: dict | None = None


@dataclasses.dataclass
class RunProgress:
    """The resumable bookkeeping of a run, saved as JSON with every checkpoint.

    Attributes:
        step: steps done.
        seconds: training seconds so far (the steps, without the logging windows' evaluations).
        finished: the run has ended (all steps, or early stopping).
        history: ``{"step": [...], "seconds": [...], ...}`` one entry per logging window; the experiment's
            ``on_log`` appends its own series.
        extra: the experiment's own resumable state (an early-stopping record, a collapse counter, ...).
    """

    step: int = 0
    seconds: float = 0.0
    finished: bool = False
    history: dict = dataclasses.field(default_factory=lambda: {"step": [], "seconds": []})
    extra: dict = dataclasses.field(default_factory=dict)


class TrainingRun(NamedTuple):
    """The outcome of :func:`train_loop`.

    Attributes:
        status: ``"finished"``, ``"interrupted"`` (``stop_after``) or ``"diverged"``.
        state: the final state (``None`` unless finished).
        best: the best state kept by ``on_log`` (with ``keep_best``; else ``None``).
        progress: the :class:`RunProgress` (history, seconds, the experiment's extra state).
        start_step: the step this session started at (0, or where it resumed).
        reason: why the run diverged.
        stopped_at: the step at which it diverged.
        last_good_checkpoint: the newest checkpoint step on disk when it diverged.
    """

    status: str
    state: Any
    best: Any
    progress: RunProgress
    start_step: int = 0
    reason: str | None = None
    stopped_at: int | None = None
    last_good_checkpoint: int | None = None


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss, metric or parameter: the message names the step, the value at
    fault, the checkpoint folder and the last good checkpoint (which is left intact).

    Attributes:
        run: the :class:`TrainingRun` (status ``"diverged"``).
    """

    def __init__(self, message: str, run: TrainingRun):
        super().__init__(message)
        self.run = run


def _non_finite(window: dict, state, done: int) -> str | None:
    """Why a logging window is not finite (the first step and metric, or the parameters), or None."""
    import jax

    from gm.deep import train

    count = None
    for name in sorted(window, key=lambda n: ("loss" not in n, n)):  # a loss first: the most telling name
        values = np.asarray(window[name])
        if not np.issubdtype(values.dtype, np.inexact) or values.ndim != 1:
            continue
        count = values.shape[0]
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            return f"metric {name!r} is {values[bad[0]]} at step {done - count + 1 + int(bad[0])}"
    if not bool(jax.device_get(train.all_finite(state))):
        return f"a parameter or optimiser value is not finite after step {done}"
    return None


def _check_run_info(saved: dict | None, given: dict | None, directory: str, force: bool) -> None:
    """Refuse to resume a run written with another seed, size or config (unless ``force``)."""
    if saved is None or given is None or force:
        return
    given = to_json(given)
    fields = sorted(k for k in set(saved) | set(given) if saved.get(k) != given.get(k))
    if fields:
        diff = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {given.get(k)!r}" for k in fields)
        raise ValueError(f"--resume refused: the checkpoints in {os.path.abspath(directory)!r} belong to another "
                         f"run ({diff}). Resume with the same flags, use a new --out for a new run, or pass --force "
                         "to continue anyway")


def train_loop(state, step_fn: Callable, *, num_steps: int, log_every: int, checkpoint_dir: str,
               on_log: Callable | None = None, checkpoint_every: int | None = None, keep_best: bool = False,
               extra: dict | None = None, resume: bool = False, stop_after: int | None = None,
               progress: bool = True, desc: str | None = None, run_info: dict | None = None,
               force: bool = False, raise_on_divergence: bool = False) -> TrainingRun:
    """Run ``step_fn`` for ``num_steps`` steps, resumably, with logging windows and orbax checkpoints.

    Every ``log_every`` steps (and after the last), the window's metrics, stacked per name
    (``{name: f32[steps in window]}``), go to ``on_log(state, done, window, progress)``, which appends what
    it records to ``progress.history`` and returns a :class:`LogResult`; the loop then appends ``step`` and
    ``seconds``. Every ``checkpoint_every`` steps (a multiple of ``log_every``; default ``log_every``) and
    when the run finishes, ``state`` (with ``keep_best``: the pair ``(state, best)``) and the
    :class:`RunProgress` are checkpointed in ``checkpoint_dir``; ``resume`` continues from the newest
    checkpoint and reproduces an uninterrupted run exactly, since ``step_fn`` sees only the state and the
    global step.

    Nothing silently diverges: at every logging window, before ``on_log``, the window's metrics and the
    state are checked; a NaN or infinite value ends the run as diverged (no checkpoint of that state is
    written; the reason names the step and the metric, and ``last_good_checkpoint`` the newest step on
    disk), as does ``on_log`` returning ``diverged``. With ``raise_on_divergence`` the loop raises
    :class:`TrainingDiverged` instead of returning. ``run_info`` (the seed, quick or full size, config)
    is saved with every checkpoint and compared on ``resume``: a difference is a ``ValueError`` naming the
    fields and what to do, unless ``force`` (which continues the checkpoint's run and keeps its identity). A checkpoint that cannot be read, or restores a non-finite
    or mismatched leaf, is a ``ValueError`` naming the folder (`gm.deep.train.restore_checkpoint`).

    Args:
        state: the initial state (also the template of the checkpoints).
        step_fn: ``(state, step) -> (state, metrics)``: one training step at global step ``step``.
        num_steps: the run's length.
        log_every: steps per logging window.
        checkpoint_dir: where the checkpoints go.
        on_log: the experiment's logging, evaluation and stopping decisions.
        checkpoint_every: steps between checkpoints.
        keep_best: keep the state ``on_log`` last marked ``new_best`` (initially the first state).
        extra: the initial ``progress.extra`` (replaced by the checkpoint's on resume).
        resume: continue from the newest checkpoint in ``checkpoint_dir``, if there is one.
        stop_after: end as if interrupted after the first logging window at or after this step.
        progress: show a tqdm progress bar.
        desc: the progress bar's label.
        run_info: JSON-serialisable identity of the run (seed, quick, config), checked on resume.
        force: resume even when ``run_info`` differs from the checkpoint's.
        raise_on_divergence: raise :class:`TrainingDiverged` rather than return a diverged run.

    Returns:
        A :class:`TrainingRun`.
    """
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    from gm.deep import train

    checkpoint_every = checkpoint_every or log_every
    if checkpoint_every % log_every:
        raise ValueError(f"checkpoint_every ({checkpoint_every}) must be a multiple of log_every ({log_every})")
    best = state if keep_best else None
    run = RunProgress(extra=dict(extra or {}))
    if resume and train.latest_checkpoint_step(checkpoint_dir) is not None:
        tree, meta = train.restore_checkpoint(checkpoint_dir, (state, best) if keep_best else state)
        saved_info = meta.pop("run", None)
        _check_run_info(saved_info, run_info, checkpoint_dir, force)
        if saved_info is not None:
            run_info = saved_info  # a forced resume continues that run: its identity stays the checkpoint's
        state, best = tree if keep_best else (tree, None)
        try:
            run = RunProgress(**meta)
        except TypeError as error:
            raise ValueError(f"the checkpoint metadata in {os.path.abspath(checkpoint_dir)!r} is not a run's "
                             f"progress ({error}); start afresh without --resume or with a new --out") from error
    start = run.step

    def save():
        meta = dataclasses.asdict(run)
        if run_info is not None:
            meta["run"] = to_json(run_info)
        train.save_checkpoint(checkpoint_dir, run.step, (state, best) if keep_best else state, meta)

    bar = tqdm(total=num_steps, initial=run.step, desc=desc, disable=not progress or run.finished, leave=True)
    window: dict[str, list] = {}
    t0 = time.time()
    for step in range(run.step, num_steps):
        if run.finished:
            break
        state, metrics = step_fn(state, step)
        for name, value in metrics.items():
            window.setdefault(name, []).append(value)
        bar.update(1)
        done = step + 1
        if done % log_every and done != num_steps:
            continue
        run.seconds += time.time() - t0
        stacked = {name: jnp.stack(values) for name, values in window.items()}
        window = {}
        reason = _non_finite(stacked, state, done)
        if reason is not None:
            outcome = LogResult(diverged=reason)
        else:
            outcome = on_log(state, done, stacked, run) if on_log is not None else LogResult()
        t0 = time.time()
        if outcome.diverged is not None:
            bar.close()
            last = train.latest_checkpoint_step(checkpoint_dir)
            result = TrainingRun("diverged", None, best, run, start, outcome.diverged, done, last)
            if raise_on_divergence:
                kept = (f"the last good checkpoint is step {last} in {os.path.abspath(checkpoint_dir)!r} "
                        "(--resume continues from it)" if last is not None else
                        f"no checkpoint was written yet in {os.path.abspath(checkpoint_dir)!r}")
                raise TrainingDiverged(f"training diverged at step {done}: {outcome.diverged}; {kept}", result)
            return result
        if keep_best and outcome.new_best:
            best = state
        run.history["step"].append(done)
        run.history["seconds"].append(round(run.seconds, 2))
        if outcome.postfix:
            bar.set_postfix(outcome.postfix)
        run.step = done
        run.finished = outcome.finished or done == num_steps
        if done % checkpoint_every == 0 or run.finished:
            save()
        if stop_after is not None and done >= stop_after and not run.finished:
            bar.close()
            return TrainingRun("interrupted", None, best, run, start)
    bar.close()
    return TrainingRun("finished", state, best, run, start)


def interrupted_message(name: str, run: TrainingRun, *, unit: str = "step", per_unit: int = 1) -> str:
    """The line an experiment prints when ``--stop-after-<unit>s`` ended its run."""
    return (f"{name}: stopped after {unit} {run.progress.step // per_unit} (--stop-after-{unit}s); "
            "continue with --resume")


# --------------------------------------------------------------------------------- classifier, metrics


def load_classifier(key, cfg: dict, directory: str, train_split, test_split, *, progress: bool = True):
    """The experiment's digit classifier (``cfg["classifier"]`` settings, at least
    ``cfg["min_classifier_accuracy"]`` on ``test_split``), restored from ``directory`` or trained and cached
    there: a :class:`gm.deep.classifier.CachedClassifier` ``(classifier, info)``."""
    from gm.deep import classifier

    return classifier.load_or_train_classifier(
        key, classifier.ClassifierConfig(**cfg["classifier"]), directory, train_split, test_split,
        min_accuracy=cfg["min_classifier_accuracy"], progress=progress)


def translation_classifier(directory: str, cfg: dict, *, seed: int = 0, progress: bool = True):
    """The digit classifier of the translation experiments (16x16, original and bold strokes), cached."""
    import jax

    from gm.data import translation

    train_split, test_split = translation.classifier_digits(size=cfg["classifier"]["image_shape"][0])
    return load_classifier(jax.random.key(seed), cfg, directory, train_split, test_split, progress=progress)


def classifier_summary(info: dict) -> dict:
    """The classifier's entry of results.json: test accuracy, training seconds, whether it came from the cache."""
    return {k: info.get(k) for k in ("test_accuracy", "train_seconds", "cached")}


class SampleMetrics(NamedTuple):
    """The classifier's reading of a set of samples (:func:`sample_metrics`)."""

    logits: np.ndarray
    metrics: dict


def sample_metrics(classifier, samples, reference_features, *, num_classes: int = 10) -> SampleMetrics:
    """Frechet distance to ``reference_features``, mode coverage, class histogram and classifier confidence
    of ``samples`` (``f32[N, H, W, C]``), with the classifier's logits of them."""
    from gm.deep import classifier as classifier_module
    from gm.deep import metrics

    logits, features = classifier_module.classify(classifier, np.asarray(samples))
    coverage = metrics.mode_coverage(logits, num_classes)
    return SampleMetrics(logits, {
        "frechet_distance": metrics.frechet_distance(reference_features, features),
        "mode_coverage": coverage["covered"],
        "class_histogram": coverage["histogram"],
        "classifier_confidence": metrics.classifier_confidence(logits),
    })


# ------------------------------------------------------------------------------------------- results


def to_json(value):
    """``value`` as JSON types: dicts (keys as JSON writes them), lists (from tuples too), numbers (from numpy
    and JAX scalars and 0-d arrays), nested lists (from arrays), dataclasses as dicts, anything else as
    ``str``."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(to_json(k)): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__array__") and not isinstance(value, type):
        array = np.asarray(value)
        return array.item() if array.ndim == 0 else array.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value))
    return str(value)


def write_results(path: str, results: dict) -> dict:
    """Write ``results`` as JSON (:func:`to_json`, indented) to ``path`` (a file, or a directory that gets
    ``results.json``) and return the JSON-ready copy that was written."""
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    ready = to_json(results)
    with open(path, "w") as f:
        json.dump(ready, f, indent=2)
    return ready


# ------------------------------------------------------------------------------------------- figures


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str, *, dpi: int = 110, tight: bool = True) -> None:
    """Save ``fig`` to ``path`` (cropped to its content unless ``tight=False``) and close it."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(fig)


def grey_grid(images, rows: int, cols: int) -> np.ndarray:
    """The first ``rows * cols`` of ``f32[N, H, W, 1]`` images in a grid with 2-pixel white gaps, row by row."""
    images = np.asarray(images)[: rows * cols, ..., 0]
    h, w = images.shape[1:]
    canvas = np.ones((rows * (h + 2) - 2, cols * (w + 2) - 2))
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = img
    return canvas


def colour_grid(rows) -> np.ndarray:
    """Tile ``rows`` (a list of lists of ``[H, W, C]`` images, grey or RGB) into one RGB image with 1-pixel
    white gaps and border."""
    h, w = np.asarray(rows[0][0]).shape[:2]
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    canvas = np.ones((n_rows * (h + 1) + 1, n_cols * (w + 1) + 1, 3), np.float32)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            img = np.asarray(img, np.float32)
            if img.shape[-1] == 1:
                img = np.repeat(img, 3, axis=-1)
            canvas[1 + i * (h + 1): 1 + i * (h + 1) + h, 1 + j * (w + 1): 1 + j * (w + 1) + w] = np.clip(img, 0, 1)
    return canvas
