"""Splitting a catalog into train, validate and test: stratified, with duplicates kept inside one split.

A shop's catalog repeats itself: the same title for the sizes and colours of one
product, the same photo filed twice. An item whose twin is in train is no test of
generalisation, so with ``GROUP_SPLIT`` items that share a cleaned title or an
image (the same bytes, or the same perceptual hash: re-encoded, resized) form one
*duplicate group*, transitively, and every group lies inside one split.
scikit-learn's ``StratifiedGroupKFold`` then keeps the categories' shares as even
across the splits as the groups allow. Folds make the sizes approximate: 1/7 of
the items for a test ratio of 0.15.
"""
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from shoplens import ShoplensError, config

# What each GROUP_SPLIT word groups by: columns of the cleaned catalog.
GROUP_KEYS = {"title": ("clean_title",), "image": ("image_sha1", "image_phash")}
GROUP_SPLITS = ("title,image", "title", "image", "none")


def duplicate_groups(table, by):
    """The duplicate group of each row: rows sharing a value of any ``by`` key, transitively, are one group.

    Parameters
    ----------
    table : pandas.DataFrame
        The cleaned catalog.
    by : iterable of str
        Keys of :data:`GROUP_KEYS` (``"title"``, ``"image"``); keys whose columns the
        catalog lacks (a catalog without images) are left out.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` group ids, ``0`` to the number of groups minus one.
    """
    columns = [column for key in by for column in GROUP_KEYS[key] if column in table]
    n = len(table)
    # A graph of rows and key values, a row joined to each of its values: its connected parts are the groups.
    rows, values, offset = [], [], n
    for column in columns:
        codes, uniques = pd.factorize(table[column])
        known = codes >= 0
        rows.append(np.flatnonzero(known))
        values.append(offset + codes[known])
        offset += len(uniques)
    if not rows:
        return np.arange(n)
    edges = (np.concatenate(rows), np.concatenate(values))
    graph = coo_matrix((np.ones(len(edges[0]), dtype=np.int8), edges), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels[:n])[0]


def split(table, ratios=config.SPLIT_RATIOS, seed=config.SEED, groups=None):
    """Split into the named splits (``config.SPLITS``), stratified by full category path.

    With ``groups`` (one id per row), no group is cut between two splits.
    """
    if groups is None or len(np.unique(groups)) == len(table):
        parts = _stratified(table, ratios, seed)
    else:
        parts = _stratified_by_group(table, ratios, seed, np.asarray(groups))
    return {name: part.sort_index().reset_index(drop=True) for name, part in zip(config.SPLITS, parts)}


def hold_out_classes(table, column, share=config.UNSEEN_SHARE, seed=config.SEED):
    """Split off the rows of a random ``share`` of the classes of ``column`` (at least one class, and one left).

    Returns
    -------
    kept, held_out : pandas.DataFrame
        The rows of the other classes, and those of the classes held out.
    classes : list of str
        The classes held out, sorted.
    """
    classes = np.sort(table[column].unique())
    if len(classes) < 2:
        raise ShoplensError(f"UNSEEN needs at least 2 classes of {column}, the catalog has {len(classes)}")
    n = min(max(1, round(share * len(classes))), len(classes) - 1)
    held = sorted(np.random.default_rng(seed).choice(classes, n, replace=False).tolist())
    out = table[column].isin(held)
    return table[~out], table[out].reset_index(drop=True), held


def _stratified(table, ratios, seed):
    train_ratio, validate_ratio, test_ratio = ratios
    try:
        train, rest = train_test_split(table, train_size=train_ratio, stratify=table["category"], random_state=seed)
        validate, test = train_test_split(rest, test_size=test_ratio / (validate_ratio + test_ratio),
                                          stratify=rest["category"], random_state=seed)
    except ValueError:
        raise ShoplensError(_too_small(table, ratios)) from None
    return train, validate, test


def _stratified_by_group(table, ratios, seed, groups):
    train_ratio, validate_ratio, test_ratio = ratios
    y = table["category"].to_numpy()
    try:
        rest, test = _one_fold(y, groups, 1 / test_ratio, seed)
        keep, validate = _one_fold(y[rest], groups[rest], (train_ratio + validate_ratio) / validate_ratio, seed)
    except ValueError:
        raise ShoplensError(_too_small(table, ratios, groups)) from None
    rows = table.index.to_numpy()
    return table.loc[rows[rest][keep]], table.loc[rows[rest][validate]], table.loc[rows[test]]


def _one_fold(y, groups, folds, seed):
    """Row positions of the rest and of one fold of ``round(folds)`` stratified group folds."""
    splitter = StratifiedGroupKFold(n_splits=max(2, round(folds)), shuffle=True, random_state=seed)
    return next(splitter.split(np.zeros(len(y)), y, groups))


def _too_small(table, ratios, groups=None):
    counts = table["category"].value_counts()
    what = f"{len(table):,} rows in {len(counts)} categories"
    advice = "raise MIN_ITEMS or change SPLIT"
    if groups is not None:
        what += f" and {len(np.unique(groups)):,} duplicate groups"
        advice += ", or let duplicates cross the splits with GROUP_SPLIT=none"
    return (f"cannot split {what} {'/'.join(map(str, ratios))} stratified (the smallest category has "
            f"{counts.min()} items); {advice}")
