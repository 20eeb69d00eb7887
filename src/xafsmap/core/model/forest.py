"""Fast exact evaluation of a trained scikit-learn random forest.

scikit-learn walks each tree with a data-dependent branch per node, one row at a time;
on this kind of 2-core machine that predicts about 0.2–0.4 M spectra/s for 100 trees.
:func:`compile_forest` packs the same trees into flat arrays, and :func:`predict_proba`
walks them branch-free over interleaved blocks of rows with numba: every row of a block
advances one level per step, so the memory loads of different rows overlap instead of
waiting on each other. Node fields live in separate unsigned arrays (structure of
arrays): the walk's index arithmetic then needs no negative-index checks, which made it
2.5x faster than one 16-byte record per node (docs/performance.md). The probabilities are scikit-learn's (same trees, same
thresholds, same leaf values, same averaging); without numba, or for inputs numba does
not handle (non-finite features), scikit-learn itself is called.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

__all__ = ["CompiledForest", "compile_forest", "has_numba", "predict_proba", "walk_forest"]

#: Rows walked together through one tree (interleaved; 32–128 measured best).
BLOCK_ROWS = 64


@dataclass(frozen=True, eq=False)
class CompiledForest:
    """The trees of a fitted forest as flat node arrays (all trees concatenated).

    Attributes
    ----------
    feature : ndarray, shape (nodes,), uint32
        Feature tested at each node (0 at leaves).
    thresholds : ndarray, shape (nodes,), float32
        ``x[feature] <= threshold`` goes left, else right: the largest float32 not
        above scikit-learn's float64 threshold, so float32 features are routed alike;
        +inf at leaves.
    children : ndarray, shape (nodes, 2), uint32
        Absolute indices of the left and right child; a leaf points to itself twice,
        so a walk that reached it stays there.
    leaf_code : ndarray, shape (nodes,), int32
        At a leaf, the class index of a pure leaf (all its training samples of one
        class, the usual case in a fully grown forest) or ``-1 - j`` for row ``j`` of
        ``leaf_values``; -1 elsewhere.
    leaf_values : ndarray, shape (L, C), float64
        Class probabilities of the impure leaves (rows sum to 1).
    roots : ndarray, shape (trees,), uint32
        Root node of each tree.
    depths : ndarray, shape (trees,), int32
        Depth of each tree: the levels walked.
    n_features : int
    classes : ndarray, shape (C,)
        The forest's ``classes_`` (the columns of the probabilities).
    """

    feature: np.ndarray
    thresholds: np.ndarray
    children: np.ndarray
    leaf_code: np.ndarray
    leaf_values: np.ndarray
    roots: np.ndarray
    depths: np.ndarray
    n_features: int
    classes: np.ndarray

    @property
    def n_trees(self) -> int:
        """Trees in the forest."""
        return int(self.roots.size)

    @property
    def is_leaf(self) -> np.ndarray:
        """True at leaves."""
        return self.children[:, 0] == np.arange(self.children.shape[0])


class TrainingStopped(RuntimeError):
    """Training was stopped by its ``stop`` callback (a Cancel button)."""


def grow_forest(forest: RandomForestClassifier | ExtraTreesClassifier, x: np.ndarray, y: np.ndarray, *,
                stop: Callable[[], bool] | None = None) -> RandomForestClassifier | ExtraTreesClassifier:
    """Fit ``forest`` (a scikit-learn forest) on ``x``, ``y``; with ``stop``, in ten groups of trees.

    ``stop()`` is called before each group; True raises :class:`TrainingStopped`. Grown in
    groups (``warm_start``), the forest is the one grown at once: each fit draws the seeds
    of the trees before it again, so tree *i* gets the same seed either way.

    >>> from sklearn.ensemble import RandomForestClassifier
    >>> x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    >>> a = grow_forest(RandomForestClassifier(7, random_state=1), x, y)
    >>> b = grow_forest(RandomForestClassifier(7, random_state=1), x, y, stop=lambda: False)
    >>> bool(np.array_equal(a.predict_proba(x), b.predict_proba(x))), b.warm_start
    (True, False)
    """
    if stop is None:
        return forest.fit(x, y)
    n_trees = forest.n_estimators
    group = max(1, -(-n_trees // 10))
    forest.set_params(warm_start=True)
    for grown in range(group, n_trees + group, group):
        if stop():
            raise TrainingStopped(f"training stopped after {grown - group} of {n_trees} trees")
        forest.set_params(n_estimators=min(grown, n_trees))
        forest.fit(x, y)
    return forest.set_params(warm_start=False)


def has_numba() -> bool:
    """True when numba can be imported (the fast path is available)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _float32_at_most(threshold: np.ndarray) -> np.ndarray:
    # x32 <= t64  <=>  x32 <= largest float32 <= t64, for every float32 x
    rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def compile_forest(forest: RandomForestClassifier | ExtraTreesClassifier) -> CompiledForest:
    """Pack a fitted single-output ``RandomForestClassifier`` into flat arrays.

    Parameters
    ----------
    forest : sklearn.ensemble.RandomForestClassifier or ExtraTreesClassifier
        Fitted, single output.

    Returns
    -------
    CompiledForest

    Raises
    ------
    ValueError
        If the forest is not fitted or has several outputs.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> x = np.arange(20.0).reshape(10, 2); y = np.arange(10) % 2
    >>> compile_forest(RandomForestClassifier(3, random_state=0).fit(x, y)).n_trees
    3
    """
    trees = getattr(forest, "estimators_", None)
    if not trees:
        raise ValueError("the forest is not fitted: it has no trees")
    if getattr(forest, "n_outputs_", 1) != 1:
        raise ValueError(f"only single-output forests compile; this one has {forest.n_outputs_} outputs")
    n_classes = int(np.size(forest.classes_))
    features, thresholds, children, codes, impure, roots, depths = [], [], [], [], [], [], []
    start, n_impure = 0, 0
    for estimator in trees:
        tree = estimator.tree_
        left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
        leaf = left < 0
        own = np.arange(tree.node_count)
        value = tree.value[:, 0, :n_classes].astype(np.float64)
        total = value.sum(axis=1, keepdims=True)
        value = value / np.where(total == 0, 1.0, total)  # as DecisionTreeClassifier.predict_proba
        pure = leaf & (value.max(axis=1) == 1.0)
        mixed = np.flatnonzero(leaf & ~pure)
        code = np.full(tree.node_count, -1, np.int64)
        code[pure] = np.argmax(value[pure], axis=1)
        code[mixed] = -1 - (n_impure + np.arange(mixed.size))
        features.append(np.where(leaf, 0, tree.feature))
        thresholds.append(np.where(leaf, np.inf, _float32_at_most(tree.threshold)).astype(np.float32))
        children.append(np.stack([np.where(leaf, own, left), np.where(leaf, own, right)], axis=1) + start)
        codes.append(code)
        impure.append(value[mixed])
        roots.append(start)
        depths.append(tree.max_depth)
        start += tree.node_count
        n_impure += mixed.size
        if start >= 2**31:
            raise ValueError(f"the forest has more than {start} nodes; at most 2**31 - 1 compile")
    return CompiledForest(
        feature=np.concatenate(features).astype(np.uint32),
        thresholds=np.concatenate(thresholds),
        children=np.concatenate(children).astype(np.uint32),
        leaf_code=np.concatenate(codes).astype(np.int32),
        leaf_values=np.concatenate(impure).reshape(-1, n_classes),
        roots=np.asarray(roots, np.uint32),
        depths=np.asarray(depths, np.int32),
        n_features=int(forest.n_features_in_),
        classes=np.asarray(forest.classes_),
    )


def predict_proba(forest: RandomForestClassifier | ExtraTreesClassifier | CompiledForest, x: np.ndarray, *,
                  block_rows: int = BLOCK_ROWS, parallel: bool = True) -> np.ndarray:
    """Class probabilities of a random forest, equal to scikit-learn's ``predict_proba``.

    Parameters
    ----------
    forest : RandomForestClassifier or CompiledForest
        A fitted forest (compiled on first use and kept on the forest object as
        ``_xafsmap_compiled``) or an already compiled one.
    x : ndarray, shape (n, F)
        Features; converted to float32 as scikit-learn does.
    block_rows : int
        Rows walked through a tree together.
    parallel : bool
        Spread the blocks over numba's threads; False walks them in the calling thread
        (without the GIL), for callers that already run one band per core.

    Returns
    -------
    ndarray, shape (n, C), float64
        Mean over trees of the leaf class probabilities; columns follow ``classes_``.

    Raises
    ------
    ValueError
        If ``x`` is not 2-D or has another number of features than the forest.

    Notes
    -----
    Every tree is walked to its full depth for every row (a leaf points to itself), so
    the walk has no data-dependent branch. Without numba, or when ``x`` holds NaN or
    infinities (whose routing scikit-learn decides by its missing-value rules),
    scikit-learn is called. Per-row sums run in another order than scikit-learn's
    thread pool, so values may differ in the last bits (below 1e-12).

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 4)).astype(np.float32); y = (x[:, 0] > 0).astype(int)
    >>> f = RandomForestClassifier(10, random_state=0).fit(x, y)
    >>> bool(np.allclose(predict_proba(f, x), f.predict_proba(x)))
    True
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (n, F), got shape {x.shape}")
    compiled = forest if isinstance(forest, CompiledForest) else None
    n_features = compiled.n_features if compiled else int(forest.n_features_in_)
    if x.shape[1] != n_features:
        raise ValueError(f"features have {x.shape[1]} columns but the forest was trained on {n_features}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not has_numba() or not np.all(np.isfinite(x)):
        if compiled is not None:  # a forest read from a model file: no scikit-learn trees to call
            return walk_forest(compiled, x)
        return forest.predict_proba(x)
    if compiled is None:
        compiled = getattr(forest, "_xafsmap_compiled", None)
        if compiled is None:
            compiled = compile_forest(forest)
            forest._xafsmap_compiled = compiled
    out = np.zeros((x.shape[0], compiled.classes.size), np.float64)
    if x.shape[0]:
        table = compiled.leaf_values if compiled.leaf_values.size else np.zeros((1, out.shape[1]))
        args = (x, compiled.feature, compiled.thresholds, compiled.children.reshape(-1), compiled.leaf_code,
                table, compiled.roots, compiled.depths, max(1, int(block_rows)), out)
        if parallel:
            with _KERNEL_LOCK:  # numba's default threading layer runs one parallel kernel at a time
                _kernels()[1](*args)
        else:
            _kernels()[0](*args)
    return out


def walk_forest(compiled: CompiledForest, x: np.ndarray) -> np.ndarray:
    """:func:`predict_proba` of a compiled forest in numpy (no numba needed).

    Every row advances one level per step through each tree (a loop over trees and
    levels, not rows). ``NaN`` features go right (``x <= threshold`` is false), where
    scikit-learn sends them to the child that saw more training samples: the two agree
    on finite features.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> x = np.arange(40.0, dtype=np.float32).reshape(20, 2); y = np.arange(20) % 2
    >>> f = RandomForestClassifier(5, random_state=0).fit(x, y)
    >>> bool(np.allclose(walk_forest(compile_forest(f), x), f.predict_proba(x)))
    True
    """
    x = np.asarray(x, dtype=np.float32)
    rows = np.arange(x.shape[0])
    out = np.zeros((x.shape[0], compiled.classes.size), np.float64)
    for root, depth in zip(compiled.roots, compiled.depths):
        node = np.full(x.shape[0], root, np.int64)
        for _ in range(int(depth)):
            right = ~(x[rows, compiled.feature[node]] <= compiled.thresholds[node])
            node = compiled.children[node, right.astype(np.intp)].astype(np.int64)
        code = compiled.leaf_code[node]
        pure = code >= 0
        out[rows[pure], code[pure]] += 1.0
        out[~pure] += compiled.leaf_values[-1 - code[~pure]]
    return out / compiled.n_trees


_KERNEL_LOCK = threading.Lock()


def _kernels():
    from . import _jit

    return _jit.forest_serial, _jit.forest_parallel
