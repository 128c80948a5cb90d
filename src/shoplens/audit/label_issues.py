"""Products filed under the wrong category: confident learning on out-of-fold probabilities.

Every product gets probabilities of every category path from fast models that never
saw it (k-fold cross-validation): logistic regression on TF-IDF word and character
n-grams of its title and, where a frozen backbone's features are cached, on those
of its photo, the two fused as a product of experts. A level's probabilities are
sums over its paths. ``cleanlab`` then flags, per level, the products whose given
label is unlikely against the class thresholds the data itself sets
(Northcutt et al., 2021), ranked by self-confidence: the probability of the given
label.
"""
import warnings

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import StandardScaler

from shoplens import ShoplensError
from shoplens.models.decode import combine_posteriors, level_probs_from_paths


def out_of_fold_probabilities(catalog, image_features=None, folds=5, seed=42):
    """Probabilities of every path for every product, each from models trained on the other folds.

    Parameters
    ----------
    catalog : pandas.DataFrame
        The cleaned catalog: ``category`` and, where it has titles, ``clean_title``.
    image_features : numpy.ndarray, optional
        ``(n, d)`` features of the products' photos, rows in the catalog's order.
    folds : int
        The k of the k-fold cross-validation.
    seed : int
        Seed of the folds.

    Returns
    -------
    paths : numpy.ndarray
        The category paths, the columns of ``probabilities``.
    probabilities : numpy.ndarray
        ``(n, len(paths))``.
    sources : list of str
        What the probabilities came from: ``"title"`` and/or ``"image"``.
    """
    codes, paths = pd.factorize(catalog["category"], sort=True)
    largest = np.bincount(codes).max()
    if folds > largest:
        raise ShoplensError(f"AUDIT_FOLDS={folds} needs a category with at least {folds} products; the largest "
                            f"has {largest}: lower AUDIT_FOLDS")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    posteriors, sources = [], []
    # The regularisation: the text model's C is that of benchmark-models' TF-IDF baseline; the photo model's
    # keeps 1,280 standardised features from memorising 7,000 products. Neither was tuned for the audit.
    if "clean_title" in catalog:
        text = make_pipeline(make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                                        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                                        min_df=2)),
                             LogisticRegression(C=20, max_iter=300))
        posteriors.append(_cross_val(text, catalog["clean_title"].to_numpy(), codes, cv))
        sources.append("title")
    if image_features is not None:
        image = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=300))
        posteriors.append(_cross_val(image, np.asarray(image_features, np.float32), codes, cv))
        sources.append("image")
    if not posteriors:
        raise ShoplensError("the catalog has no titles and no cached photo features to check its categories with; "
                            "train a frozen pretrained model first (make model_train MODELMODE=image "
                            "BACKBONE=mobilenetv2 WEIGHTS=<file>)")
    prior = np.bincount(codes, minlength=len(paths))
    return np.asarray(paths), combine_posteriors(posteriors, prior), sources


def label_issue_table(catalog, paths, probabilities, levels):
    """One row per product and level whose given label ``cleanlab`` finds unlikely; the most unlikely first.

    Returns a table of ``id``, ``level``, ``given``, ``suggested`` (the level's most
    likely class), ``given_probability``, ``suggested_probability``, ``quality``
    (cleanlab's self-confidence), ``category`` (the given path) and
    ``suggested_path`` (the most likely path).
    """
    classes = {level: np.unique(catalog[level].to_numpy()) for level in levels}
    best_path = paths[probabilities.argmax(axis=1)]
    rows = np.arange(len(catalog))
    parts = []
    for level, level_probabilities in zip(levels, level_probs_from_paths(probabilities, paths, classes)):
        names = classes[level]
        if len(names) < 2:
            continue
        given = np.searchsorted(names, catalog[level].to_numpy())
        found = find_label_issues(given, level_probabilities, return_indices_ranked_by="self_confidence")
        quality = get_label_quality_scores(given, level_probabilities, method="self_confidence")
        suggested = level_probabilities.argmax(axis=1)
        parts.append(pd.DataFrame({
            "id": catalog["id"].to_numpy()[found], "level": level, "given": names[given[found]],
            "suggested": names[suggested[found]],
            "given_probability": level_probabilities[rows, given][found].round(4),
            "suggested_probability": level_probabilities[rows, suggested][found].round(4),
            "quality": quality[found].round(4), "category": catalog["category"].to_numpy()[found],
            "suggested_path": best_path[found]}))
    columns = ["id", "level", "given", "suggested", "given_probability", "suggested_probability", "quality",
               "category", "suggested_path"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def _cross_val(model, x, y, cv):
    with warnings.catch_warnings():
        # A fold may lack the rarest paths (their probability there is 0) and lbfgs may stop a little short.
        warnings.simplefilter("ignore", (UserWarning, ConvergenceWarning))
        return cross_val_predict(model, x, y, cv=cv, method="predict_proba")
