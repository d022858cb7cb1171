"""Naive Bayes classifier as a Bayesian network: a class root with one child per feature.

    P(C = c | x) ∝ P(C = c) · Π_f P(X_f = x_f | C = c)

The model *is* a `gm.bn.BayesNet` (variable 0 the class, then the features, each with the class as
its only parent), so every `gm.bn` query works on it (``bn.marginals(model.net, ev)`` gives the class
posterior with any subset of features observed). `fit` uses `gm.learn.dirichlet`: the class prior is
the (weighted) maximum-likelihood estimate and each feature row gets ``alpha`` pseudo-counts
(Lidstone/Laplace smoothing), as scikit-learn's ``CategoricalNB(alpha=alpha)`` does.

Values (issue 18, through `gm.validation`): features and labels must be integer arrays (``TypeError``
otherwise, never a silent cast); eager calls raise ``ValueError`` naming the record, the feature and the
value for a feature outside ``[-1, card)`` or a label outside ``[-1, num_classes)`` (-1: missing /
unlabelled). Under ``jax.jit`` `log_joint` and `predict_proba` return a NaN row for a record with an
out-of-range feature and `predict` returns -1 for it, never a clipped or dropped value.

Examples:
  >>> x = jnp.array([[0, 1], [0, 0], [1, 1], [1, 0]])                  # int32[N, F]
  >>> y = jnp.array([0, 0, 1, 1])                                     # int32[N]
  >>> model = fit(x, y, alpha=1.0)
  >>> print(predict_proba(model, jnp.array([[0, 1], [-1, 1]])))   # f32[N, n_classes]; -1 missing
  [[0.75 0.25]
   [0.5  0.5 ]]
  >>> float(jnp.mean(predict(model, x) == y))                      # accuracy on the training set
  1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.network import BayesNet, Structure
from gm.learn.common import Prior
from gm.learn.estimators import dirichlet
from gm.validation import is_concrete, require

__all__ = ["NaiveBayes", "structure", "fit", "log_joint", "predict_proba", "predict"]


class NaiveBayes(NamedTuple):
    """A categorical naive Bayes classifier: P(c, x) = P(c) Π_f P(x_f | c).

    Attributes:
      net: the `BayesNet` (variable 0 the class, variables 1..F the features, parent = class);
        ``cpts[0]: f32[n_classes]``, ``cpts[f]: f32[n_classes, card_f]``.

    Examples:
      >>> x = jnp.array([[0, 1], [0, 0], [1, 1], [1, 0]])                  # int32[N, F]
      >>> y = jnp.array([0, 0, 1, 1])                                     # int32[N]
      >>> model = fit(x, y, alpha=1.0)
      >>> model.net.names
      ('class', 'x0', 'x1')
      >>> print(model.net.cpt("x0"))                                     # P(x0 | class), Laplace-smoothed
      [[0.75 0.25]
       [0.25 0.75]]
    """

    net: BayesNet

    @property
    def num_classes(self) -> int:
        """Number of classes (the class variable's cardinality).

        Examples:
          >>> x = jnp.array([[0, 1], [0, 0], [1, 1], [1, 0]])                  # int32[N, F]
          >>> y = jnp.array([0, 0, 1, 1])                                     # int32[N]
          >>> model = fit(x, y, alpha=1.0)
          >>> model.num_classes
          2
        """
        return self.net.cards[0]

    @property
    def num_features(self) -> int:
        """Number of features F.

        Examples:
          >>> x = jnp.array([[0, 1], [0, 0], [1, 1], [1, 0]])                  # int32[N, F]
          >>> y = jnp.array([0, 0, 1, 1])                                     # int32[N]
          >>> model = fit(x, y, alpha=1.0)
          >>> model.num_features
          2
        """
        return self.net.n_vars - 1


def _integers(values, name: str, what: str):
    """``values`` as a host array (concrete) or a traced one, after the integer dtype check."""
    values = np.asarray(values) if is_concrete(values) else jnp.asarray(values)
    if not jnp.issubdtype(values.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer array of {what}; got dtype {values.dtype}")
    return values


def _in_range(data, num_categories) -> jax.Array:
    """bool[N, F]: each feature value in ``[-1, card_f)``."""
    return (data >= -1) & (data < np.asarray(num_categories))


def _check_features(data, num_categories, names) -> None:
    """`require` every feature value in ``[-1, card)``, naming the record, the feature and the value."""

    def describe(at):
        if at is None:
            return "data out of range: every feature value must be in [0, card) or -1 (missing)"
        r, f = at
        return (f"data[{r}, {f}] = {int(data[r, f])} is not a value of feature {names[f]!r} (values 0.."
                f"{int(num_categories[f]) - 1}); use a value index or -1 (missing)")

    require(_in_range(data, num_categories), describe)


def _check_labels(labels, num_classes: int) -> None:
    def describe(at):
        if at is None:
            return f"labels out of range: every label must be a class index in [0, {num_classes}) or -1 (unlabelled)"
        return (f"labels[{at[0]}] = {int(labels[at])} is not a class index in [0, {num_classes}); "
                f"use -1 for an unlabelled record")

    require((labels >= -1) & (labels < num_classes), describe)


def structure(
    num_classes: int,
    num_categories: Sequence[int],
    *,
    class_name: str = "class",
    feature_names: Sequence[str] | None = None,
) -> Structure:
    """The naive Bayes `Structure`: the class root, then one child per feature.

    Args:
      num_classes: number of classes.
      num_categories: number of values of each feature (one int per feature).
      class_name: the class variable's name.
      feature_names: the features' names (default ``x0, x1, ...``).

    Returns:
      A `Structure` with states ``"0", "1", ...`` and parents ``((), (0,), (0,), ...)``.

    Raises:
      ValueError: a number of names other than of features, or repeated names.

    Examples:
      >>> s = structure(3, [2, 4], feature_names=["colour", "size"])
      >>> s.names, s.cards, s.parents
      (('class', 'colour', 'size'), (3, 2, 4), ((), (0,), (0,)))
    """
    feature_names = list(feature_names or [f"x{f}" for f in range(len(num_categories))])
    if len(feature_names) != len(num_categories):
        raise ValueError(
            f"feature_names has {len(feature_names)} names for {len(num_categories)} features (num_categories)"
        )
    names = (class_name, *feature_names)
    if len(set(names)) != len(names):
        raise ValueError(f"class_name and feature_names must be distinct, got {names}")
    states = (tuple(str(k) for k in range(num_classes)),) + tuple(
        tuple(str(k) for k in range(int(c))) for c in num_categories
    )
    return Structure(names, states, ((),) + ((0,),) * len(num_categories))


def fit(
    data,
    labels,
    *,
    alpha: float = 1.0,
    num_classes: int | None = None,
    num_categories: int | Sequence[int] | None = None,
    weights=None,
    class_name: str = "class",
    feature_names: Sequence[str] | None = None,
) -> NaiveBayes:
    """Fit a categorical naive Bayes classifier.

    Args:
      data: ``int32[N, F]`` feature values (state indices); -1 marks a missing value, left out of that
        feature's counts.
      labels: ``int32[N]`` class indices; -1 marks an unlabelled record, left out of every count.
      alpha: pseudo-count added to every (class, feature value) count.
      num_classes / num_categories: number of classes / of values of each feature (an int for all
        features, or one per feature); by default one more than the largest value seen (this needs
        concrete data, i.e. a call outside jit).
      weights: optional ``f32[N]`` record weights.

      class_name: the class variable's name.
      feature_names: the features' names (default ``x0, x1, ...``).

    Returns:
      A `NaiveBayes`: P(c) = N_c / N, P(x_f = v | c) = (N_cfv + alpha) / (N_cf + alpha * card_f).

    Raises:
      ValueError: shapes that do not match, a negative ``alpha``, no records without ``num_classes`` and
        ``num_categories``, or (eager) a feature or label out of range, naming the record and the value.
      TypeError: float or bool ``data`` or ``labels`` (they used to be truncated to integers).

    Examples:
      >>> x = jnp.array([[0, 1], [0, 0], [1, 1], [1, 0]])                  # int32[N, F]
      >>> y = jnp.array([0, 0, 1, 1])                                     # int32[N]
      >>> model = fit(x, y, alpha=1.0)
      >>> print(model.net.cpt("class"), model.net.cpt("x1"))
      [0.5 0.5] [[0.5 0.5]
       [0.5 0.5]]
    """
    data = _integers(data, "data", "feature values")
    labels = _integers(labels, "labels", "class indices")
    if data.ndim != 2:
        raise ValueError(f"data must have shape (N, F), got {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"labels must have shape ({data.shape[0]},) (one per record of data), got {labels.shape}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    n_features = data.shape[1]
    if (num_classes is None or num_categories is None) and data.shape[0] == 0:
        raise ValueError("data has no records: pass num_classes and num_categories (they cannot be inferred)")
    if num_classes is None:
        num_classes = int(np.max(np.asarray(labels))) + 1
    if num_categories is None:
        num_categories = [int(c) + 1 for c in np.max(np.asarray(data), axis=0)]
    elif isinstance(num_categories, (int, np.integer)):
        num_categories = [int(num_categories)] * n_features
    if len(num_categories) != n_features:
        raise ValueError(f"num_categories has {len(num_categories)} entries for {n_features} features")
    s = structure(num_classes, num_categories, class_name=class_name, feature_names=feature_names)
    _check_labels(labels, num_classes)
    _check_features(data, num_categories, s.names[1:])
    records = jnp.concatenate([labels[:, None].astype(jnp.int32), data.astype(jnp.int32)], axis=1)
    pseudo = [0.0] + [float(alpha)] * n_features
    net = dirichlet(s, records, prior=Prior.dirichlet(pseudo, estimate="mean"), weights=weights)
    return NaiveBayes(net)


def log_joint(model: NaiveBayes, data) -> jax.Array:
    """``log P(C = c, x_observed)``: ``f32[N, n_classes]`` for ``data: int32[N, F]`` (-1 = missing).

    log P(c, x) = log P(c) + Σ_f observed log P(x_f | c).

    Args:
      model: a `NaiveBayes`.
      data: ``int32[N, F]``, -1 missing.

    Returns:
      ``f32[N, n_classes]``.

    Raises:
      ValueError: ``data`` not of shape ``(N, F)``, or (eager) a value outside ``[-1, card)``, naming the
        record, the feature and the value (under jit: a NaN row).
      TypeError: ``data`` not an integer array.

    Examples:
      >>> x = jnp.array([[0, 1], [0, 0], [1, 1], [1, 0]])                  # int32[N, F]
      >>> y = jnp.array([0, 0, 1, 1])                                     # int32[N]
      >>> model = fit(x, y, alpha=1.0)
      >>> print(jnp.exp(log_joint(model, jnp.array([[0, 1]]))))      # 0.5 * 0.75 * 0.5, 0.5 * 0.25 * 0.5
      [[0.1875 0.0625]]
    """
    data = _integers(data, "data", "feature values")
    if data.ndim != 2 or data.shape[1] != model.num_features:
        raise ValueError(f"data must have shape (N, {model.num_features}), got {data.shape}")
    cards = model.net.cards[1:]
    _check_features(data, cards, model.net.names[1:])
    data = jnp.asarray(data)
    cpts = model.net.cpts
    total = jnp.broadcast_to(jnp.log(cpts[0]), (data.shape[0], model.num_classes))
    for f in range(model.num_features):
        x = data[:, f]
        table = jnp.log(cpts[f + 1])  # f32[C, card_f]
        term = table[:, jnp.maximum(x, 0)].T  # f32[N, C]
        total = total + jnp.where((x >= 0)[:, None], term, 0.0)
    return jnp.where(jnp.all(_in_range(data, cards), -1, keepdims=True), total, jnp.nan)  # the marker


def predict_proba(model: NaiveBayes, data) -> jax.Array:
    """Class posteriors ``P(C | x): f32[N, n_classes]``; missing features (-1) are summed out.

    P(c | x) = softmax_c log P(c, x).

    Args:
      model: a `NaiveBayes`.
      data: ``int32[N, F]``, -1 missing.

    Returns:
      ``f32[N, n_classes]``, rows summing to one.

    Examples:
      >>> x = jnp.array([[0, 1], [0, 0], [1, 1], [1, 0]])                  # int32[N, F]
      >>> y = jnp.array([0, 0, 1, 1])                                     # int32[N]
      >>> model = fit(x, y, alpha=1.0)
      >>> print(predict_proba(model, jnp.array([[1, 0]])))
      [[0.25 0.75]]
    """
    return jax.nn.softmax(log_joint(model, data), axis=-1)


def predict(model: NaiveBayes, data) -> jax.Array:
    """Most probable class ``int32[N]``: argmax_c P(c | x).

    Args:
      model: a `NaiveBayes`.
      data: ``int32[N, F]``, -1 missing.

    Returns:
      ``int32[N]``; -1 (under jit) for a record with a feature out of range.

    Examples:
      >>> x = jnp.array([[0, 1], [0, 0], [1, 1], [1, 0]])                  # int32[N, F]
      >>> y = jnp.array([0, 0, 1, 1])                                     # int32[N]
      >>> model = fit(x, y, alpha=1.0)
      >>> predict(model, jnp.array([[0, 0], [1, -1]])).tolist()
      [0, 1]
    """
    log_joint_ = log_joint(model, data)
    best = jnp.argmax(log_joint_, axis=-1).astype(jnp.int32)
    return jnp.where(jnp.any(jnp.isnan(log_joint_), -1), -1, best)
