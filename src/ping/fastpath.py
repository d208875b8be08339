"""Predict without scikit-learn's per-call overhead, with bit-identical results.

scikit-learn checks its input and its config on every call, for every step of a
pipeline: the iris pipeline (StandardScaler, LogisticRegression) costs ~190 µs per
``predict`` of one row, of which the arithmetic is ~4 µs. A forest goes through
joblib per tree (~3 ms for 100 trees against ~0.35 ms of tree walking).

Each path here replays the arithmetic of the scikit-learn methods it replaces, the
same operations in the same order on the same dtype, so every bit of the result is
the same. It is taken only for classes that use exactly those methods (a subclass
that overrides one keeps scikit-learn's path), and only for input the server has
already checked: a finite float64 matrix. Anything that would make scikit-learn
raise (a non-finite value after the transformers, a wrong width) is handed back to
scikit-learn, so its error, and Ping's 422, stay the same. ``prove`` then checks the
chosen path against scikit-learn itself on the loaded model, at start-up, so a
scikit-learn release that changes its arithmetic costs speed, never an answer.
Warnings are untouched, not silenced (PERF-NOTES.md, trap 1).
"""

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.special import expit  # type: ignore[import-untyped]

logger = logging.getLogger("ping")

# Trees split on float32, and scikit-learn refuses any value past its range.
FLOAT32_MAX = float(np.finfo(np.float32).max)

Outputs = tuple[np.ndarray, np.ndarray]  # labels, probabilities


class FastPath(Protocol):
    """A replacement for an estimator's predict methods. Each returns None to hand
    the rows back to scikit-learn, which then raises what it always raised."""

    def predict(self, rows: np.ndarray) -> np.ndarray | None: ...

    def predict_proba(self, rows: np.ndarray) -> np.ndarray | None: ...

    def predict_with_probabilities(self, rows: np.ndarray) -> Outputs | None: ...


def fast_path(estimator: Any) -> FastPath | None:
    """The fast path for ``estimator`` (alone or ending a pipeline), or None."""
    if hasattr(estimator, "steps") and not _plain_pipeline(estimator):
        return None
    steps = [s for _, s in getattr(estimator, "steps", [("", estimator)])]
    *prefix, final = [s for s in steps if s not in (None, "passthrough")] or [None]
    transformers = _transformers(prefix)
    if transformers is None:
        return None
    for path in (ForestPath, LinearClassifierPath, LinearRegressorPath):
        found = path.of(transformers, final)
        if found is not None:
            return found
    return None


def prove(path: FastPath, estimator: Any, candidates: Sequence[np.ndarray]) -> str | None:
    """Where ``path`` differs from ``estimator``, or None when every bit agrees.

    The proof runs on the first matrix of ``candidates`` that both take: a matrix that
    scikit-learn refuses, or that the path hands back, proves nothing.
    """
    methods = ["predict", "predict_proba"] if hasattr(estimator, "predict_proba") else ["predict"]
    for rows in candidates:
        # Random rows may be outside a transformer's domain (a log of a negative): what
        # either side warns of here is no request's business, and must not fail start-up
        # under -W error. The filters are restored on exit: none is left installed.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                want = [np.asarray(getattr(estimator, name)(rows.copy())) for name in methods]
            except ValueError:
                continue
            got = [getattr(path, name)(rows.copy()) for name in methods]
        if got[0] is None:
            continue
        for name, fast, slow in zip(methods, got, want, strict=True):
            if fast is None or (fast.dtype == slow.dtype and np.array_equal(fast, slow)):
                continue
            if fast.shape != slow.shape or fast.dtype != slow.dtype:
                return (
                    f"{name} gave {fast.dtype} {fast.shape}, scikit-learn {slow.dtype} {slow.shape}"
                )
            i = int(np.argwhere(fast != slow)[0][0])
            return f"{name} of row {i} gave {fast[i].tolist()}, scikit-learn {slow[i].tolist()}"
        return None
    return None


def _plain_pipeline(pipeline: Any) -> bool:
    """A Pipeline whose methods and config are scikit-learn's own (no memory, no
    pandas output), so its predict is each transform in turn, then the last step's."""
    from sklearn.pipeline import Pipeline

    return type(pipeline) is Pipeline and getattr(pipeline, "_sklearn_output_config", {}) == {}


# --- transformers ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Scale:
    """StandardScaler.transform on a dense float64 matrix: ``X -= mean_``, ``X /= scale_``."""

    mean: np.ndarray | None
    scale: np.ndarray | None
    width: int

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        if x.shape[1] != self.width:
            return None  # sklearn names the mismatch
        if self.mean is not None:
            x = x - self.mean
        if self.scale is not None:
            x = x / self.scale if self.mean is None else np.divide(x, self.scale, out=x)
        return x


@dataclass(frozen=True)
class _Transform:
    """Any other transformer: its own ``transform``, with its own checks."""

    step: Any

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        out = self.step.transform(x)
        return out if isinstance(out, np.ndarray) else None


Transformer = _Scale | _Transform


def _transformers(prefix: Sequence[Any]) -> tuple[Transformer, ...] | None:
    found: list[Transformer] = []
    for step in prefix:
        if not hasattr(step, "transform"):
            return None
        if getattr(step, "_sklearn_output_config", {}) not in ({}, {"transform": "default"}):
            return None  # pandas output: the next step would see a DataFrame
        found.append(_scaler(step) or _Transform(step))
    return tuple(found)


def _scaler(step: Any) -> _Scale | None:
    if type(step).__module__ != "sklearn.preprocessing._data":
        return None
    from sklearn.preprocessing import StandardScaler

    if type(step) is not StandardScaler:
        return None
    mean, scale = step.mean_ if step.with_mean else None, step.scale_ if step.with_std else None
    for array in (mean, scale):
        if array is not None and (not isinstance(array, np.ndarray) or array.dtype != np.float64):
            return None
    return _Scale(mean, scale, int(step.n_features_in_))


def _transform(transformers: Sequence[Transformer], rows: np.ndarray) -> np.ndarray | None:
    """The rows after every transformer, as a finite float matrix; else None."""
    x: np.ndarray | None = rows
    for transformer in transformers:
        assert x is not None
        x = transformer(x)
        if x is None:
            return None
    assert x is not None
    if x.ndim != 2 or x.dtype.kind != "f" or not np.isfinite(x).all():
        return None  # sklearn's checks refuse it, or convert it: let them
    return x


# --- forests --------------------------------------------------------------------------


@dataclass(frozen=True)
class ForestPath:
    """A random forest's ``predict_proba`` without joblib: the per-tree probabilities
    summed in the same order as scikit-learn's sequential path (``n_jobs`` unset), and
    its ``predict``, the classes at the argmax of those."""

    transformers: tuple[Transformer, ...]
    forest: Any
    # Per tree: its nodes, and its nodes' class probabilities. A view of the tree's own
    # array (no copy), taken once: Tree.predict builds it again on every call.
    trees: tuple[tuple[Any, np.ndarray], ...]

    @classmethod
    def of(cls, transformers: tuple[Transformer, ...], forest: Any) -> "ForestPath | None":
        if not type(forest).__module__.startswith("sklearn.ensemble"):
            return None  # checked first: importing sklearn.ensemble costs ~5 MB
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
        from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

        plain = (
            type(forest) in (RandomForestClassifier, ExtraTreesClassifier)
            and forest.n_jobs in (None, 1)
            and forest.n_outputs_ == 1
            and all(
                type(t) in (DecisionTreeClassifier, ExtraTreeClassifier) for t in forest.estimators_
            )
        )
        if not plain:
            return None
        trees = tuple((t.tree_, t.tree_.value[:, 0, : t.n_classes_]) for t in forest.estimators_)
        return cls(transformers, forest, trees)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray | None:
        x = _transform(self.transformers, rows)
        if x is None or x.shape[1] != self.forest.n_features_in_:  # trees index columns unchecked
            return None
        if x.size and np.abs(x).max() > FLOAT32_MAX:  # sklearn warns, then refuses it
            return None
        x = np.ascontiguousarray(x, dtype=np.float32)  # the dtype trees split on
        proba = np.zeros((x.shape[0], self.forest.n_classes_), dtype=np.float64)
        for nodes, values in self.trees:  # Tree.predict is values.take(apply(x))
            proba += values.take(nodes.apply(x), axis=0)
        proba /= len(self.trees)
        return proba

    def predict(self, rows: np.ndarray) -> np.ndarray | None:
        both = self.predict_with_probabilities(rows)
        return None if both is None else both[0]

    def predict_with_probabilities(self, rows: np.ndarray) -> Outputs | None:
        proba = self.predict_proba(rows)
        if proba is None:
            return None
        # As ForestClassifier.predict does it.
        return self.forest.classes_.take(np.argmax(proba, axis=1), axis=0), proba


# --- linear models --------------------------------------------------------------------


def _linear_weights(model: Any) -> tuple[np.ndarray, np.ndarray | float] | None:
    """``coef_`` and ``intercept_`` when both are dense float64 (not sparsified)."""
    coef, intercept = getattr(model, "coef_", None), getattr(model, "intercept_", None)
    if not isinstance(coef, np.ndarray) or coef.dtype != np.float64 or coef.ndim not in (1, 2):
        return None
    if isinstance(intercept, np.ndarray) and intercept.dtype == np.float64:
        return coef, intercept
    if isinstance(intercept, float):  # a single output's: np.float64, or 0.0 without one
        return coef, intercept
    return None


@dataclass(frozen=True)
class LinearClassifierPath:
    """LinearClassifierMixin's ``decision_function`` and ``predict`` (LogisticRegression,
    RidgeClassifier, LinearSVC, SGDClassifier, Perceptron...), and LogisticRegression's
    ``predict_proba``: softmax for three classes or more, the logistic for two."""

    transformers: tuple[Transformer, ...]
    model: Any
    coef_t: np.ndarray
    intercept: np.ndarray | float
    probabilities: bool

    @classmethod
    def of(cls, transformers: tuple[Transformer, ...], model: Any) -> "LinearClassifierPath | None":
        if not type(model).__module__.startswith(("sklearn.linear_model", "sklearn.svm")):
            return None
        from sklearn.linear_model import LogisticRegression
        from sklearn.linear_model._base import LinearClassifierMixin

        kind = type(model)
        if not (
            isinstance(model, LinearClassifierMixin)
            and kind.decision_function is LinearClassifierMixin.decision_function
            and kind.predict is LinearClassifierMixin.predict
        ):
            return None
        weights = _linear_weights(model)
        if weights is None:
            return None
        coef, intercept = weights
        probabilities = (
            kind is LogisticRegression and kind.predict_proba is LogisticRegression.predict_proba
        )
        return cls(
            transformers, model, coef.T if coef.ndim == 2 else coef, intercept, probabilities
        )

    def _scores(self, rows: np.ndarray) -> np.ndarray | None:
        x = _transform(self.transformers, rows)
        if x is None or x.shape[1] != self.model.n_features_in_:
            return None
        scores: np.ndarray = x @ self.coef_t + self.intercept
        return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return np.asarray(self.model.classes_.take(indices, axis=0))

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        """LogisticRegression.predict_proba from the decision scores (which it overwrites)."""
        if len(self.model.classes_) <= 2:  # _predict_proba_lr, binary
            prob = expit(scores, out=scores)
            return np.stack([1 - prob, prob], axis=1)
        # sklearn.utils.extmath.softmax(scores, copy=False)
        scores -= scores.max(axis=1).reshape((-1, 1))
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape((-1, 1))
        return scores

    def predict(self, rows: np.ndarray) -> np.ndarray | None:
        scores = self._scores(rows)
        return None if scores is None else self._labels(scores)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray | None:
        if not self.probabilities:
            return None
        scores = self._scores(rows)
        return None if scores is None else self._probabilities(scores)

    def predict_with_probabilities(self, rows: np.ndarray) -> Outputs | None:
        if not self.probabilities:
            return None
        scores = self._scores(rows)
        if scores is None:
            return None
        labels = self._labels(scores)  # first: the probabilities overwrite the scores
        return labels, self._probabilities(scores)


@dataclass(frozen=True)
class LinearRegressorPath:
    """LinearModel's ``predict`` (LinearRegression, Ridge, Lasso, ElasticNet...):
    ``X @ coef_ (.T) + intercept_``."""

    transformers: tuple[Transformer, ...]
    model: Any
    coef_t: np.ndarray
    intercept: np.ndarray | float

    @classmethod
    def of(cls, transformers: tuple[Transformer, ...], model: Any) -> "LinearRegressorPath | None":
        if not type(model).__module__.startswith("sklearn.linear_model"):
            return None
        from sklearn.linear_model._base import LinearModel

        predict, decision_function = _plain_regressor_methods()
        kind = type(model)
        if not (
            isinstance(model, LinearModel)
            and kind.predict in predict
            and kind._decision_function in decision_function
        ):
            return None
        weights = _linear_weights(model)
        if weights is None:
            return None
        coef, intercept = weights
        return cls(transformers, model, coef.T if coef.ndim == 2 else coef, intercept)

    def predict(self, rows: np.ndarray) -> np.ndarray | None:
        x = _transform(self.transformers, rows)
        if x is None or x.shape[1] != self.model.n_features_in_:
            return None
        return np.asarray(x @ self.coef_t + self.intercept)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray | None:
        return None

    def predict_with_probabilities(self, rows: np.ndarray) -> Outputs | None:
        return None


def _plain_regressor_methods() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The ``predict`` and ``_decision_function`` methods that come down to LinearModel's
    arithmetic on a dense matrix: they only call ``super()`` (for their docstrings, or
    for sparse input)."""
    from sklearn.linear_model import ElasticNet, Ridge
    from sklearn.linear_model._base import LinearModel, MultiOutputLinearModel

    return (
        (LinearModel.predict, MultiOutputLinearModel.predict, Ridge.predict),
        (LinearModel._decision_function, ElasticNet._decision_function),
    )
