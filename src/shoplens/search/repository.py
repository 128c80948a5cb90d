"""The image repository: every product with its embedding, searchable by photo, text, attributes and category.

:class:`Repository` is loaded once (embeddings, index, models) and answers many
queries, from the shell or from the web gallery. It validates everything it is
given: a bad query raises :class:`shoplens.ShoplensError` (a client mistake) or
:class:`NotFoundError` (an unknown product), with a one-line message.

Every method returns plain Python data (dicts, lists, strings, floats), ready
for a table, a figure or JSON. A product is::

    {"id": "10001", "title": "...", "category": "Apparel > Topwear > Tshirts",
     "levels": {"product_category": "Apparel", ...}, "attributes": {"gender": "Men", ...},
     "image_path": "/abs/path.jpg", "split": "train"}

and a search result is a product with its ``"score"`` added.
"""
import io
import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from shoplens import ShoplensError, config
from shoplens.data.clean_titles import TitleCleaner
from shoplens.data.images import load_image
from shoplens.models.decode import combine_posteriors, decode_paths, level_probs_from_paths
from shoplens.models.extract_features import embedding_model, load_features_file, normalise
from shoplens.models.trained import load_named_model
from shoplens.search.index import load_index, top_k

log = logging.getLogger(__name__)


class NotFoundError(ShoplensError):
    """A product id that is not in the repository."""


class Repository:
    """Search and browse the products of ``extracted_features.npz`` through its index.

    Use :meth:`load` rather than the constructor.

    Parameters
    ----------
    features : dict
        The arrays of ``extracted_features.npz``.
    index : ExactIndex or FaissIndex
        The nearest-neighbour index over ``features["embeddings"]``.
    models_dir : path
        Where the image model named in ``features`` and the text model are.
    text_model : str
        The text model for text queries; without it, text search uses keywords alone.
    language : str
        Language of the titles, for cleaning text queries as make_dataset cleaned the titles.
    """

    def __init__(self, features, index, models_dir=config.MODELS_DIR, text_model=config.SEARCH_TEXT_MODEL,
                 language=config.LANGUAGE, catalog_name="catalog", processed_dir=config.PROCESSED_DIR):
        self.features = features
        self.index = index
        self.models_dir = Path(models_dir)
        self.processed_dir = Path(processed_dir)
        self.text_model_name = text_model
        self.language = language
        self.catalog_name = catalog_name
        self.image_model_name = str(features["model"])
        self.levels = features["levels"].tolist()
        self.attributes = features["attributes"].tolist()
        self.ids = features["ids"]
        self._row = {item: i for i, item in enumerate(self.ids.tolist())}
        # Each filterable field as integer codes, so a filter is an ``isin`` over small ints.
        self._fields = {}
        for k, name in enumerate(self.levels):
            self._fields[name] = pd.factorize(features["labels"][:, k], sort=True)
        for k, name in enumerate(self.attributes):
            self._fields[name] = pd.factorize(features["attribute_values"][:, k], sort=True)
        self._category_codes, self._categories = pd.factorize(features["category"], sort=True)
        self._lock = threading.Lock()
        self._image_model = self._text_model = self._keywords = None
        self._text_model_missing = False

    @classmethod
    def load(cls, models_dir=config.MODELS_DIR, processed_dir=config.PROCESSED_DIR,
             text_model=config.SEARCH_TEXT_MODEL, load_models=True):
        """Load the embeddings, the index and (unless ``load_models`` is false: then on first use) the models.

        Parameters
        ----------
        models_dir : path
            Holds ``embeddings/``, ``search_index/`` and the trained models.
        processed_dir : path
            The processed data: the embeddings and models must come from its splits, whose
            summary names the catalog and the language titles were cleaned in.
        text_model : str
            The text model used by :meth:`search_text`.
        load_models : bool
            Load the image and text models now, so no query pays for it.
        """
        import json

        models_dir = Path(models_dir)
        features_path = models_dir / config.EMBEDDINGS_DIR.name / config.EXTRACTED_FEATURES.name
        index_path = models_dir / config.INDEX_DIR.name / config.SEARCH_INDEX.name
        features = load_features_file(features_path, processed_dir=processed_dir)
        index = load_index(features["embeddings"], str(features["fingerprint"]), index_path, features_path)
        summary = config.splits_dir(processed_dir) / "summary.json"
        data = json.loads(summary.read_text()) if summary.is_file() else {}
        repository = cls(features, index, models_dir, text_model, data.get("options", {}).get("language",
                         config.LANGUAGE), data.get("catalog_name", "catalog"), processed_dir)
        if load_models:
            repository.load_models()
        return repository

    def load_models(self):
        """Load the image and text models now, so that no query pays for it."""
        self._image_runner()
        self._text_runner()

    def __len__(self):
        return len(self.ids)

    # Products, browsing and facets

    def item(self, item_id):
        """The product with id ``item_id``; :class:`NotFoundError` if there is none."""
        return self._record(self._row_of(item_id))

    def browse(self, filters=None, category=None, offset=0, limit=config.BROWSE_LIMIT):
        """Products matching the filters and the category, in catalog order, one page of them.

        Parameters
        ----------
        filters : dict, optional
            Field (a level or an attribute) -> a value or a list of values (any of them).
        category : str, optional
            A category path or its beginning, e.g. ``"Footwear > Shoes"``.
        offset, limit : int
            The page: skip ``offset`` matches, return at most ``limit``.

        Returns
        -------
        total : int
            Matches in all.
        items : list of dict
            The products of the page.
        """
        if int(offset) < 0 or int(limit) < 0:
            raise ShoplensError(f"offset and limit must not be negative, got offset {offset} and limit {limit}")
        mask = self._mask(filters, category)
        rows = np.flatnonzero(mask) if mask is not None else np.arange(len(self))
        return len(rows), [self._record(i) for i in rows[int(offset):int(offset) + int(limit)]]

    def facets(self):
        """Each level's and attribute's values with their number of products: ``{field: {value: count}}``."""
        facets = {}
        for name, (codes, values) in self._fields.items():
            counts = np.bincount(codes, minlength=len(values))
            facets[name] = {str(v): int(c) for v, c in zip(values, counts)}
        return facets

    def categories(self):
        """Every category path with its number of products."""
        counts = np.bincount(self._category_codes, minlength=len(self._categories))
        return {str(c): int(n) for c, n in zip(self._categories, counts)}

    # Queries

    def similar_to_image(self, image, k=config.K, same_category=False, filters=None, category=None):
        """Classify a photo with the image model, then find the most similar products.

        Parameters
        ----------
        image : path, bytes or file-like
            The photo.
        k : int
            Products to return.
        same_category : bool
            Only products of the predicted category path (as the original image repository did).
        filters, category
            As in :meth:`browse`.

        Returns
        -------
        prediction : dict
            The predicted ``category`` path, its ``probability``, and the best classes of each level.
        results : list of dict
            Up to ``k`` products, most similar first, with their cosine ``score``.
        """
        self._check_k(k)
        mask = self._mask(filters, category)
        pixels = _query_image(image, self._image_size())  # before loading the model: a bad photo fails fast
        runner, metadata = self._image_runner()
        outputs = runner.predict_on_batch(pixels[None])
        prediction = _describe(_path_probs(outputs, metadata)[0], metadata)
        if same_category:
            in_category = self._category_mask(prediction["category"], prefix=False)
            mask = in_category if mask is None else mask & in_category
        query = normalise(np.asarray(outputs["embedding"], dtype=np.float32))
        return prediction, self._nearest(query, k, mask)

    def similar_to_item(self, item_id, k=config.K, filters=None, category=None):
        """The ``k`` products most similar to product ``item_id`` (itself excluded)."""
        self._check_k(k, exclude=1)
        row = self._row_of(item_id)
        mask = self._mask(filters, category)
        mask = np.ones(len(self), dtype=bool) if mask is None else mask.copy()
        mask[row] = False
        return self._nearest(self.features["embeddings"][row][None], k, mask)

    def search_text(self, query, k=config.K, filters=None, category=None):
        """Products for a free-text description.

        Keyword relevance (TF-IDF cosine between the cleaned query and each cleaned
        title) plus ``TEXT_CATEGORY_WEIGHT`` times the text model's probability of the
        product's category path for the query. Adding the category is what lets "red
        running shoes for men" rank sports shoes whose titles say "trainers" above
        red shirts, and it orders near-equal keyword matches by whether they are the
        kind of product asked for; its weight below 1 means a sure category is worth
        half a perfect title match, so it never buries a strong keyword match. Without
        the text model the score is the keyword relevance alone (said once, in the log).

        Returns
        -------
        prediction : dict or None
            The text model's reading of the query, as in :meth:`similar_to_image`.
        results : list of dict
            Up to ``k`` products with a positive score, best first.
        """
        self._check_k(k)
        mask = self._mask(filters, category)
        clean = TitleCleaner(self.language)(str(query))
        if not clean:
            raise ShoplensError(f"query '{query}' has no words left after cleaning (stop words, digits, punctuation)")
        vectorizer, titles = self._keyword_index()
        scores = (titles @ vectorizer.transform([clean]).T).toarray().ravel().astype(np.float32)
        prediction = None
        runner = self._text_runner()
        if runner is not None:
            model, metadata = runner
            path_probs = _path_probs(model.predict_on_batch({"title": np.array([clean], dtype=object)}), metadata)[0]
            prediction = _describe(path_probs, metadata)
            paths = {p: i for i, p in enumerate(metadata["labels"]["paths"])}
            # Each product gets the probability of its own path; paths the model never saw get none.
            lookup = np.array([path_probs[paths[c]] if c in paths else 0.0 for c in self._categories], np.float32)
            scores += np.float32(config.TEXT_CATEGORY_WEIGHT) * lookup[self._category_codes]
        if mask is not None:
            scores[~mask] = 0.0
        top = top_k(scores[None], k)[0]
        return prediction, [self._record(i, scores[i]) for i in top if scores[i] > 0]

    def classify(self, image=None, title=None):
        """The predicted category of a photo (image model), a title (text model), or both.

        With both, the two models' path probabilities are combined as a product of experts
        divided by the prior (:func:`shoplens.models.decode.combine_posteriors`): photo and
        title as independent evidence, the classes' frequencies counted once.
        """
        if image is None and not title:
            raise ShoplensError("give an image and/or a title to classify")
        probs, metadata = None, None
        if image is not None:
            pixels = _query_image(image, self._image_size())
            runner, metadata = self._image_runner()
            outputs = runner.predict_on_batch(pixels[None])
            probs = _path_probs(outputs, metadata)[0]
        if title:
            clean = TitleCleaner(self.language)(str(title))
            if not clean:
                raise ShoplensError(f"title '{title}' has no words left after cleaning")
            runner = self._text_runner()
            if runner is None:
                raise ShoplensError(f"{self.models_dir / self.text_model_name}: no text model to read titles; "
                                    f"run `make model_train MODELMODE=text`")
            model, text_metadata = runner
            text_probs = _path_probs(model.predict_on_batch({"title": np.array([clean], dtype=object)}),
                                     text_metadata)[0]
            if probs is None:
                probs, metadata = text_probs, text_metadata
            else:
                paths = metadata["labels"]["paths"]
                index = {p: i for i, p in enumerate(text_metadata["labels"]["paths"])}
                text_probs = np.array([text_probs[index[p]] if p in index else 0.0 for p in paths])
                counts = metadata.get("label_counts", {}).get("paths", {})
                prior = np.array([counts.get(p, 1) for p in paths], dtype=np.float64)
                probs = combine_posteriors([probs, text_probs], prior)
        return _describe(probs, metadata)

    # Helpers

    def check_filters(self, filters=None, category=None):
        """Validate filters and a category without searching; return the number of matching products."""
        mask = self._mask(filters, category)
        return len(self) if mask is None else int(mask.sum())

    def _nearest(self, queries, k, mask):
        scores, rows = self.index.search(queries, k, allowed=mask)
        return [self._record(i, s) for i, s in zip(rows[0], scores[0]) if i >= 0]

    def _record(self, row, score=None):
        f = self.features
        record = {
            "id": str(f["ids"][row]),
            "title": str(f["titles"][row]),
            "category": str(f["category"][row]),
            "levels": dict(zip(self.levels, map(str, f["labels"][row]))),
            "attributes": dict(zip(self.attributes, map(str, f["attribute_values"][row]))),
            "image_path": str(config.project_path(str(f["image_paths"][row]))) if f["image_paths"][row] else "",
            "split": str(f["splits"][row]),
        }
        if score is not None:
            record["score"] = round(float(score), 4)
        return record

    def _row_of(self, item_id):
        row = self._row.get(str(item_id))
        if row is None:
            raise NotFoundError(f"no product with id '{item_id}'")
        return row

    def _check_k(self, k, exclude=0):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ShoplensError(f"k must be a whole number, got '{k}'")
        if k < 1:
            raise ShoplensError(f"k must be at least 1, got {k}")
        if k > len(self) - exclude:
            raise ShoplensError(f"k={k} is larger than the catalog ({len(self) - exclude:,} products to return)")

    def _mask(self, filters=None, category=None):
        """Products matching every filter field (any of its values) and the category; ``None`` for all."""
        mask = None
        for field, values in (filters or {}).items():
            if field not in self._fields:
                raise ShoplensError(f"unknown filter field '{field}' (choose from {', '.join(self._fields)})")
            codes, known = self._fields[field]
            values = [values] if isinstance(values, str) else list(values)
            lookup = {str(v).casefold(): i for i, v in enumerate(known)}
            wanted = []
            for value in values:
                if str(value).strip().casefold() not in lookup:
                    raise ShoplensError(f"unknown {field} '{value}' (choose from {_listing(known)})")
                wanted.append(lookup[str(value).strip().casefold()])
            matches = np.isin(codes, wanted)
            mask = matches if mask is None else mask & matches
        if category:
            in_category = self._category_mask(category)
            mask = in_category if mask is None else mask & in_category
        return mask

    def _category_mask(self, category, prefix=True):
        """Products whose path is ``category`` or, with ``prefix``, starts with its levels."""
        parts = [p.strip() for p in str(category).split(config.CATEGORY_SEP.strip())]
        wanted = config.CATEGORY_SEP.join(parts).casefold()
        matches = [i for i, c in enumerate(self._categories)
                   if c.casefold() == wanted or (prefix and c.casefold().startswith(wanted + config.CATEGORY_SEP))]
        if not matches and prefix:
            tops = sorted({c.split(config.CATEGORY_SEP)[0] for c in self._categories})
            raise ShoplensError(f"unknown category '{category}' (paths start with {_listing(tops)}, levels "
                                f"separated by '{config.CATEGORY_SEP.strip()}')")
        return np.isin(self._category_codes, matches)

    def _image_size(self):
        """The image model's input size, from its metadata (no model loading)."""

        if self._image_model is not None:
            return self._image_model[1]["image_size"]
        _, metadata = load_named_model(self.image_model_name, self.models_dir, self.processed_dir, metadata_only=True)
        return metadata["image_size"]

    def _image_runner(self):
        """The image model with its embedding layer as an extra output, and its metadata; loaded once."""
        with self._lock:
            if self._image_model is None:
                import keras

                model, metadata = load_named_model(self.image_model_name, self.models_dir, self.processed_dir)
                embedding = embedding_model(model, str(self.features["layer"]), self.image_model_name)
                outputs = {name: model.get_layer(name).output for name in metadata["heads"]}
                outputs["embedding"] = embedding.output
                runner = keras.Model(model.get_layer("image").output, outputs)
                runner.predict_on_batch(np.zeros((1, metadata["image_size"], metadata["image_size"], 3), np.uint8))
                self._image_model = runner, metadata
            return self._image_model

    def _text_runner(self):
        """The text model and its metadata, loaded once; ``None`` (said once) if it is missing."""
        with self._lock:
            if self._text_model is None and not self._text_model_missing:
                try:
                    model, metadata = load_named_model(self.text_model_name, self.models_dir, self.processed_dir)
                except ShoplensError as err:
                    self._text_model_missing = True
                    log.warning("text search uses keywords alone: %s", err)
                    return None
                if metadata["modelmode"] != "text":
                    raise ShoplensError(f"SEARCH_TEXT_MODEL={self.text_model_name} is not a text model")
                model.predict_on_batch({"title": np.array(["warm up"], dtype=object)})
                self._text_model = model, metadata
            return self._text_model

    def _keyword_index(self):
        """TF-IDF of every cleaned title, fitted on first use."""
        with self._lock:
            if self._keywords is None:
                from sklearn.feature_extraction.text import TfidfVectorizer

                # Titles are already cleaned and stemmed: split on spaces and nothing else.
                vectorizer = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False,
                                             sublinear_tf=True)
                self._keywords = vectorizer, vectorizer.fit_transform(self.features["clean_titles"].tolist())
            return self._keywords


def _query_image(image, size):
    """Decode a query photo (path, bytes or file-like) into a ``(size, size, 3)`` uint8 array."""
    name = str(image) if isinstance(image, (str, Path)) else "the uploaded image"
    if isinstance(image, (str, Path)) and not Path(image).is_file():
        raise ShoplensError(f"{image}: no such image file")
    if isinstance(image, (bytes, bytearray)):
        image = io.BytesIO(image)
    try:
        return load_image(image, size, name=name)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ShoplensError(f"{name}: cannot read as an image ({reason})") from None


def _path_probs(outputs, metadata):
    """``(n, n_paths)`` probabilities of the category paths from a model's outputs."""
    labels = metadata["labels"]
    if metadata["classmode"] == "multiclass":
        return np.asarray(outputs["category"], dtype=np.float64)
    level_probs = [np.asarray(outputs[name], dtype=np.float64) for name in labels["levels"]]
    return decode_paths(level_probs, labels["paths"], labels["levels"])[1]


def _describe(path_probs, metadata, top=3):
    """The best path, its probability, and the ``top`` classes of each level with their probabilities."""
    labels = metadata["labels"]
    best = int(np.argmax(path_probs))
    level_probs = level_probs_from_paths(path_probs[None], labels["paths"], labels["levels"])
    levels = {}
    for (name, classes), probs in zip(labels["levels"].items(), level_probs):
        order = np.argsort(-probs[0])[:top]
        levels[name] = [{"name": classes[j], "probability": round(float(probs[0, j]), 4)} for j in order]
    return {"category": labels["paths"][best], "probability": round(float(path_probs[best]), 4), "levels": levels,
            "model": metadata["name"]}


def _listing(values, most=12):
    values = [str(v) for v in values]
    shown = ", ".join(values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")
