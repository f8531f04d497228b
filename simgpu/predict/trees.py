"""The trees of a trained forest as plain arrays, and their predictions.

scikit-learn grows the forests (:mod:`simgpu.predict.model`); what prediction needs of them, and
what the cache on disk holds (:mod:`simgpu.predict.cache`), is five arrays over all the trees'
nodes. No Python object is ever rebuilt from a file, so a cache file can hold numbers only.

- ``feature``, ``threshold``, ``left``, ``right``: one entry per split node, numbered from 0 in
  the order scikit-learn numbers them, tree after tree. A child is a *code*: ``c >= 0`` the split
  node ``c``, ``c < 0`` the leaf ``~c`` (that is ``-c - 1``). A split node's children come after
  it (scikit-learn numbers a node before its children), which is what makes a walk end.
- ``value``: one row per leaf, its outputs (one, or two for a forest of runtime and power).
- ``roots``: each tree's first node, as a code (a tree of a single leaf has a leaf root).

A row goes left where its feature is ``<=`` the threshold, as in scikit-learn, which compares the
row's value rounded to float32 with a float64 threshold. Here the threshold is stored as the
largest float32 not above scikit-learn's, so ``x32 <= threshold32`` holds exactly when
``x32 <= threshold64`` does: every tree sends every row to the same leaf as scikit-learn's, and
the predictions are the same numbers, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ARRAYS", "MAX_DEPTH", "TreeArrays", "TreeError"]

#: The arrays of a :class:`TreeArrays`, with the dtype each is stored in.
ARRAYS: dict[str, np.dtype[Any]] = {
    "roots": np.dtype("<i4"),
    "feature": np.dtype("<i4"),
    "threshold": np.dtype("<f4"),
    "left": np.dtype("<i4"),
    "right": np.dtype("<i4"),
    "value": np.dtype("<f8"),
}
#: Deepest tree accepted from a file. assumption: far above any tree grown here (the default
#: forest's deepest tree on the 48,581 training rows has 48 levels).
MAX_DEPTH = 10_000
_MAX_NODES = 2**31 - 1  # int32 codes


class TreeError(ValueError):
    """Arrays that do not describe a forest (a damaged or crafted file)."""


def _threshold32(t64: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each float64 threshold."""
    with np.errstate(over="ignore"):
        t32 = t64.astype(np.float32)
    up = t32.astype(np.float64) > t64
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    return t32


@dataclass(frozen=True)
class TreeArrays:
    """The trees of one forest (see the module's docstring)."""

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    #: the columns a row must have
    n_features: int
    #: the deepest tree's number of split levels (a walk takes at most this many steps)
    max_depth: int

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_outputs(self) -> int:
        return int(self.value.shape[1])

    @property
    def nbytes(self) -> int:
        return sum(int(getattr(self, name).nbytes) for name in ARRAYS)

    @classmethod
    def from_sklearn(cls, forest: Any) -> TreeArrays:
        """The trees of a fitted scikit-learn forest (``forest.estimators_``)."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
        n_split = n_leaf = depth = 0
        for est in forest.estimators_:
            tree = est.tree_
            left, right = tree.children_left, tree.children_right
            is_split = left != -1
            # codes of every node of this tree: split nodes count up, leaves count down
            split_id = np.cumsum(is_split) - 1 + n_split
            leaf_id = np.cumsum(~is_split) - 1 + n_leaf
            code = np.where(is_split, split_id, ~leaf_id)
            parts["roots"].append(code[:1])
            parts["feature"].append(tree.feature[is_split])
            parts["threshold"].append(_threshold32(tree.threshold[is_split]))
            parts["left"].append(code[left[is_split]])
            parts["right"].append(code[right[is_split]])
            parts["value"].append(tree.value[~is_split, :, 0])
            n_split += int(is_split.sum())
            n_leaf += int((~is_split).sum())
            depth = max(depth, int(tree.max_depth))
        if max(n_split, n_leaf) > _MAX_NODES:
            raise TreeError(f"{max(n_split, n_leaf)} nodes: more than int32 codes can number")
        arrays = {name: np.concatenate(parts[name]).astype(dtype, copy=False)
                  for name, dtype in ARRAYS.items()}
        return cls(**arrays, n_features=int(forest.n_features_in_), max_depth=depth)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name (what the cache stores)."""
        return {name: getattr(self, name) for name in ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_features: int,
                    max_depth: int) -> TreeArrays:
        """Arrays read back from a file, checked: a :class:`TreeError` unless they describe
        trees over ``n_features`` columns, none deeper than ``max_depth``, with finite leaf
        values."""
        missing = sorted(set(ARRAYS) - set(arrays))
        if missing:
            raise TreeError(f"arrays {missing} missing")
        for name, dtype in ARRAYS.items():
            a = arrays[name]
            if a.dtype != dtype:
                raise TreeError(f"array {name!r} is {a.dtype}, expected {dtype}")
            if a.ndim != (2 if name == "value" else 1):
                raise TreeError(f"array {name!r} has shape {a.shape}")
        if not (isinstance(n_features, int) and n_features >= 1):
            raise TreeError(f"n_features {n_features!r}, expected an integer >= 1")
        if not (isinstance(max_depth, int) and 0 <= max_depth <= MAX_DEPTH):
            raise TreeError(f"max_depth {max_depth!r}, expected an integer from 0 to {MAX_DEPTH}")
        roots, feature, threshold = arrays["roots"], arrays["feature"], arrays["threshold"]
        left, right, value = arrays["left"], arrays["right"], arrays["value"]
        n_split, n_leaf = len(feature), len(value)
        if not (len(threshold) == len(left) == len(right) == n_split):
            raise TreeError("the split-node arrays differ in length")
        if len(roots) == 0 or value.shape[1] == 0 or n_leaf == 0:
            raise TreeError("no trees, leaves or outputs")
        if n_split and (feature.min() < 0 or feature.max() >= n_features):
            raise TreeError(f"a split on a feature outside 0..{n_features - 1}")
        if not np.isfinite(value).all():
            raise TreeError("a leaf value that is not a finite number")
        index = np.arange(n_split)
        for name, codes, after in (("roots", roots, -1), ("left", left, index),
                                   ("right", right, index)):
            bad = np.where(codes >= 0, (codes <= after) | (codes >= n_split),
                           ~codes.astype(np.int64) >= n_leaf)
            if bad.any():
                raise TreeError(f"array {name!r} points outside the trees (or back up a tree)")
        # trees, not graphs: a split node has one parent at most (so the walk below visits
        # each node once), and every walk ends within max_depth steps
        refs = np.concatenate([roots[roots >= 0], left[left >= 0], right[right >= 0]])
        if refs.size and np.bincount(refs, minlength=n_split).max() > 1:
            raise TreeError("a split node with two parents")
        frontier = roots[roots >= 0]
        for _ in range(max_depth):
            if not frontier.size:
                break
            kids = np.concatenate([left[frontier], right[frontier]])
            frontier = kids[kids >= 0]
        if frontier.size:
            raise TreeError(f"a tree deeper than its stated depth of {max_depth}")
        return cls(roots=roots, feature=feature, threshold=threshold, left=left, right=right,
                   value=value, n_features=n_features, max_depth=max_depth)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Every tree's prediction for every row of ``X`` (rows x :attr:`n_features`): shape
        (trees, rows), or (trees, rows, outputs) for more than one output. The same numbers as
        ``np.stack([tree.predict(X) for tree in forest.estimators_])``."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X has shape {X.shape}, expected (rows, {self.n_features})")
        with np.errstate(over="ignore"):
            X32 = X.astype(np.float32)  # what scikit-learn compares (its DTYPE)
        n = X.shape[0]
        node = np.repeat(self.roots.astype(np.int64), n)  # (tree, row) pairs, tree-major
        row = np.tile(np.arange(n), self.n_trees)
        active = np.flatnonzero(node >= 0)
        for _ in range(self.max_depth + 1):
            if not active.size:
                break
            at = node[active]
            go_left = X32[row[active], self.feature[at]] <= self.threshold[at]
            nxt = np.where(go_left, self.left[at], self.right[at])
            node[active] = nxt
            active = active[nxt >= 0]
        if active.size:  # pragma: no cover - from_arrays and from_sklearn rule it out
            raise TreeError(f"a tree deeper than its stated depth of {self.max_depth}")
        out = self.value[~node]
        if self.n_outputs == 1:
            return out.reshape(self.n_trees, n)
        return out.reshape(self.n_trees, n, self.n_outputs)
