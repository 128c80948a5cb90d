"""Filters and facets: which products match the chosen field values and category, and how many have each value.

A filter maps a field (a category level or an attribute) to a value or a list of
values (any of them); fields combine with "and". Facet counts follow the usual
faceted-search rule: a field's counts apply every *other* chosen filter, so the
values of that field stay choosable ("Women (412)" while ``gender=Men`` is on
says what choosing Women as well would add).
"""
import numpy as np
import pandas as pd

from shoplens import ShoplensError, config


class Fields:
    """The filterable fields of a repository's products, each as small integer codes.

    Parameters
    ----------
    features : dict
        The arrays of ``extracted_features.npz``: ``levels``, ``labels``, ``attributes``,
        ``attribute_values`` and ``category``.
    """

    def __init__(self, features):
        self.levels = features["levels"].tolist()
        self.attributes = features["attributes"].tolist()
        self.codes = {}  # field -> (codes per product, its values, sorted)
        for k, name in enumerate(self.levels):
            self.codes[name] = pd.factorize(features["labels"][:, k], sort=True)
        for k, name in enumerate(self.attributes):
            self.codes[name] = pd.factorize(features["attribute_values"][:, k], sort=True)
        self.category_codes, self.categories = pd.factorize(features["category"], sort=True)

    def mask(self, filters=None, category=None):
        """Products matching every filter field (any of its values) and the category; ``None`` for all."""
        return _all(self._matches(filters, category).values())

    def _matches(self, filters=None, category=None):
        """Each filter field's products matching it, and the category's under the key ``None``."""
        matches = {field: np.isin(self.codes[self._known(field)][0], self.value_codes(field, values))
                   for field, values in (filters or {}).items()}
        if category:
            matches[None] = self.category_mask(category)
        return matches

    def value_codes(self, field, values):
        """The codes of a field's values (a value or a list of them), matched ignoring case."""
        known = self.codes[self._known(field)][1]
        lookup = {str(v).casefold(): i for i, v in enumerate(known)}
        codes = []
        for value in [values] if isinstance(values, str) else list(values):
            code = lookup.get(str(value).strip().casefold())
            if code is None:
                raise ShoplensError(f"unknown {field} '{value}' (choose from {listing(known)})")
            codes.append(code)
        return codes

    def facets(self, filters=None, category=None):
        """Each field's values with their number of products, under the other fields' filters and the category.

        Returns
        -------
        dict
            ``{field: {value: count}}``, every value listed, counts of 0 included.
        """
        matches = self._matches(filters, category)
        facets = {}
        for name, (codes, values) in self.codes.items():
            mask = _all(match for field, match in matches.items() if field != name)
            counts = np.bincount(codes if mask is None else codes[mask], minlength=len(values))
            facets[name] = {str(v): int(c) for v, c in zip(values, counts)}
        return facets

    def category_counts(self):
        """Every category path with its number of products."""
        counts = np.bincount(self.category_codes, minlength=len(self.categories))
        return {str(c): int(n) for c, n in zip(self.categories, counts)}

    def category_mask(self, category, prefix=True):
        """Products whose path is ``category`` or, with ``prefix``, starts with its levels."""
        parts = [p.strip() for p in str(category).split(config.CATEGORY_SEP.strip())]
        wanted = config.CATEGORY_SEP.join(parts).casefold()
        matches = [i for i, c in enumerate(self.categories)
                   if c.casefold() == wanted or (prefix and c.casefold().startswith(wanted + config.CATEGORY_SEP))]
        if not matches and prefix:
            tops = sorted({c.split(config.CATEGORY_SEP)[0] for c in self.categories})
            raise ShoplensError(f"unknown category '{category}' (paths start with {listing(tops)}, levels "
                                f"separated by '{config.CATEGORY_SEP.strip()}')")
        return np.isin(self.category_codes, matches)

    def _known(self, field):
        if field not in self.codes:
            raise ShoplensError(f"unknown filter field '{field}' (choose from {', '.join(self.codes)})")
        return field


def _all(masks):
    """The products in every one of ``masks``; ``None`` (all of them) for no mask."""
    masks = list(masks)
    return np.logical_and.reduce(masks) if masks else None


def listing(values, most=12):
    """``"a, b, c and 9 more"``: a list of choices short enough for a one-line message."""
    values = [str(v) for v in values]
    shown = ", ".join(values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")
