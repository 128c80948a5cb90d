"""The image repository: every product with its embedding, searchable by photo, text, attributes and category.

:class:`Repository` loads once what queries need (embeddings, index, models, the
text index) and answers many, from the shell, the web gallery or a notebook. The
work is done by a module each: :mod:`~shoplens.search.filters` (filters and
facets), :mod:`~shoplens.search.text_search` (text queries),
:mod:`~shoplens.search.image_search` (query photos) and
:mod:`~shoplens.search.index` (nearest neighbours). A bad query raises
:class:`shoplens.ShoplensError` (a client mistake) or :class:`NotFoundError` (an
unknown product), with a one-line message.

Every method returns plain Python data (dicts, lists, strings, floats), ready
for a table, a figure or JSON. A product is::

    {"id": "10001", "title": "...", "category": "Apparel > Topwear > Tshirts",
     "levels": {"product_category": "Apparel", ...}, "attributes": {"gender": "Men", ...},
     "image_path": "/abs/path.jpg", "split": "train"}

and a search result is a product with its ``"score"``, from 0 to 1, added (and, for
a text query, ``"why"``: what it matched).
"""
import functools
import io
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from shoplens import ShoplensError, config
from shoplens.data.clean_titles import TitleCleaner
from shoplens.models.bag_of_words import category_reader
from shoplens.models.decode import combine_posteriors, path_probs
from shoplens.models.extract_features import embedding_model, load_features_file, normalise
from shoplens.models.localise import ActivationMaps, crop_boxes, crop_photo
from shoplens.models.trained import load_named_model
from shoplens.search.filters import Fields
from shoplens.search.image_search import photo_box, read_photo
from shoplens.search.index import load_index, top_k
from shoplens.search.predictions import describe, per_product
from shoplens.search.text_search import TextSearch, describe_reading

log = logging.getLogger(__name__)


class NotFoundError(ShoplensError):
    """A product id that is not in the repository."""


class Repository:
    """Search and browse the products of ``extracted_features.npz`` through its index.

    Use :meth:`load` rather than the constructor.

    Parameters
    ----------
    features : dict
        The arrays of ``extracted_features.npz``. The embeddings are left to the index, which holds
        them as it searches them (as int8 with ``INDEX_PRECISION=int8``).
    index : ExactIndex, Int8Index or FaissIndex
        The nearest-neighbour index over ``features["embeddings"]``.
    models_dir : path
        Where the image model named in ``features`` and the text model are.
    text_model : str
        The text model for text queries; without it, text search uses titles and attributes alone.
    language : str
        Language of the titles, for cleaning text queries as make_dataset cleaned the titles.
    """

    def __init__(self, features, index, models_dir=config.MODELS_DIR, text_model=config.SEARCH_TEXT_MODEL,
                 language=config.LANGUAGE, catalog_name="catalog", processed_dir=config.PROCESSED_DIR):
        self.features = {name: array for name, array in features.items() if name != "embeddings"}
        self.index = index
        self.models_dir = Path(models_dir)
        self.processed_dir = Path(processed_dir)
        self.text_model_name = text_model
        self.language = language
        self.catalog_name = catalog_name
        self.image_model_name = str(features["model"])
        # Query photos are cropped as the catalog's photos were before they were embedded.
        self.crop = str(features.get("crop", "none"))
        self.cleaner = TitleCleaner(language)
        self.fields = Fields(features)
        self.levels, self.attributes = self.fields.levels, self.fields.attributes
        self.ids = features["ids"]
        self._row = {item: i for i, item in enumerate(self.ids.tolist())}
        self._lock = threading.Lock()
        self._base_record = functools.lru_cache(maxsize=4096)(self._make_record)  # the rows of recent results
        self._image_model = self._text_model = self._text_search = self._activation_maps = None
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
            Load the image and text models and the text index now, so no query pays for it.
        """
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
        """Load the image and text models and the text index now, so that no query pays for it."""
        self._image_runner()
        self._text_runner()
        self.text_index()

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
        mask = self.fields.mask(filters, category)
        rows = np.flatnonzero(mask) if mask is not None else np.arange(len(self))
        return len(rows), [self._record(i) for i in rows[int(offset):int(offset) + int(limit)]]

    def facets(self, filters=None, category=None):
        """Each level's and attribute's values with their number of products: ``{field: {value: count}}``.

        With filters, a field's counts apply the *other* fields' filters and the category
        (see :mod:`shoplens.search.filters`).
        """
        return self.fields.facets(filters, category)

    def categories(self):
        """Every category path with its number of products."""
        return self.fields.category_counts()

    def check_filters(self, filters=None, category=None):
        """Validate filters and a category without searching; return the number of matching products."""
        mask = self.fields.mask(filters, category)
        return len(self) if mask is None else int(mask.sum())

    # Queries

    def similar_to_image(self, image, k=config.K, same_category=False, filters=None, category=None):
        """Classify a photo with the image model, then find the most similar products.

        A product whose photo is the query photo itself (the same bytes) is not among them.

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
            The predicted ``category`` path, its ``probability``, the best classes of each level, and ``crop``:
            where the product was found when the embeddings are of crops (``CROP=auto``), ``{"box": [x0, y0, x1,
            y1], "width": ..., "height": ...}`` in pixels of the photo, else ``None``.
        results : list of dict
            Up to ``k`` products, most similar first, with their cosine ``score``.
        """
        self._check_k(k)
        mask = self.fields.mask(filters, category)
        pixels, sha1, crop = self._query_photo(image)
        runner, metadata = self._image_runner()
        outputs = runner.predict_on_batch(pixels[None])
        prediction = {**describe(path_probs(outputs, metadata)[0], metadata), "crop": crop}
        if same_category:
            in_category = self.fields.category_mask(prediction["category"], prefix=False)
            mask = in_category if mask is None else mask & in_category
        itself = self.features["image_sha1"] == sha1
        if itself.any():
            mask = ~itself if mask is None else mask & ~itself
        query = normalise(np.asarray(outputs["embedding"], dtype=np.float32))
        return prediction, self._nearest(query, k, mask)

    def similar_to_item(self, item_id, k=config.K, filters=None, category=None):
        """The ``k`` products most similar to product ``item_id`` (itself excluded)."""
        self._check_k(k, exclude=1)
        row = self._row_of(item_id)
        mask = self.fields.mask(filters, category)
        mask = np.ones(len(self), dtype=bool) if mask is None else mask.copy()
        mask[row] = False
        return self._nearest(self.index.vectors_of([row]), k, mask)

    def search_text(self, query, k=config.K, filters=None, category=None):
        """Products for a free-text description, scored from 0 to 1 (:mod:`shoplens.search.text_search`).

        Words naming attribute values ("blue", "men") match those attributes, the others
        the titles (BM25), and the text model's probability of each product's category
        adds to both. Without the text model, titles and attributes alone (said once, in
        the log).

        Returns
        -------
        reading : dict
            What the query was read as: ``words`` matched against titles (as typed, or the
            known word read for a misspelt one), ``attributes``
            (``{field: [values]}``), ``corrections`` (``{typed: read as}``), ``unknown``
            words, the text model's ``prediction`` (as in :meth:`similar_to_image`;
            ``None`` without a model or a known word), and all of it as one line, ``text``.
        results : list of dict
            Up to ``k`` products that match a title word or an attribute, best first, each
            with its ``score`` and ``why`` (a few words on what it matched); empty when
            nothing matches.
        """
        self._check_k(k)
        mask = self.fields.mask(filters, category)
        text = self.text_index()
        reading = text.read(query)
        if not reading["clean"] and not reading["unknown"]:
            raise ShoplensError(f"query '{query}' has no words left after cleaning (stop words, digits, punctuation)")
        prediction, category_probs = None, None
        runner = self._text_runner() if reading["clean"] else None
        if runner is not None:
            read_categories, metadata = runner
            probs = read_categories([reading["clean"]])[0]
            prediction = describe(probs, metadata)
            category_probs = per_product(probs, metadata, self.fields.categories, self.fields.category_codes)
        rows, scores, parts = text.score(reading, category_probs, mask)
        best = top_k(scores[None], min(k, len(rows)))[0]
        top = rows[best]
        why = text.explain(top, reading, {name: part[best] for name, part in parts.items()},
                           self.features["category"][top].tolist())
        results = [{**self._record(i, s), "why": found} for i, s, found in zip(top, scores[best], why)]
        public = {"words": [reading["typed"][w] for w in reading["words"]], "attributes": reading["attributes"],
                  "corrections": reading["corrections"], "unknown": reading["unknown"], "prediction": prediction}
        return {**public, "text": describe_reading(public)}, results

    def classify(self, image=None, title=None):
        """The predicted category of a photo (image model), a title (text model), or both.

        With both, the two models' path probabilities are combined as a product of experts
        divided by the prior (:func:`shoplens.models.decode.combine_posteriors`): photo and
        title as independent evidence, the classes' frequencies counted once. The photo is cropped
        as the embeddings' photos were, and ``crop`` says where, as in :meth:`similar_to_image`.
        """
        if image is None and not title:
            raise ShoplensError("give an image and/or a title to classify")
        probs, metadata, crop = None, None, None
        if image is not None:
            pixels, _, crop = self._query_photo(image)
            runner, metadata = self._image_runner()
            probs = path_probs(runner.predict_on_batch(pixels[None]), metadata)[0]
        if title:
            clean = self.cleaner(str(title))
            if not clean:
                raise ShoplensError(f"title '{title}' has no words left after cleaning")
            runner = self._text_runner()
            if runner is None:
                raise ShoplensError(f"{self.models_dir / self.text_model_name}: no text model to read titles; "
                                    f"run `make model_train MODELMODE=text`")
            read_categories, text_metadata = runner
            text_probs = read_categories([clean])[0]
            if probs is None:
                probs, metadata = text_probs, text_metadata
            else:
                paths = metadata["labels"]["paths"]
                index = {p: i for i, p in enumerate(text_metadata["labels"]["paths"])}
                text_probs = np.array([text_probs[index[p]] if p in index else 0.0 for p in paths])
                counts = metadata.get("label_counts", {}).get("paths", {})
                prior = np.array([counts.get(p, 1) for p in paths], dtype=np.float64)
                probs = combine_posteriors([probs, text_probs], prior)
        return {**describe(probs, metadata), "crop": crop}

    # Helpers

    def _nearest(self, queries, k, mask):
        scores, rows = self.index.search(queries, k, allowed=mask)
        return [self._record(i, s) for i, s in zip(rows[0], scores[0]) if i >= 0]

    def _record(self, row, score=None):
        base = self._base_record(int(row))
        record = {**base, "levels": dict(base["levels"]), "attributes": dict(base["attributes"])}
        if score is not None:
            # Cosine similarities of non-negative embeddings and text scores both lie in [0, 1].
            record["score"] = round(min(max(float(score), 0.0), 1.0), 4)
        return record

    def _make_record(self, row):
        f = self.features
        return {
            "id": str(f["ids"][row]),
            "title": str(f["titles"][row]),
            "category": str(f["category"][row]),
            "levels": dict(zip(self.levels, map(str, f["labels"][row]))),
            "attributes": dict(zip(self.attributes, map(str, f["attribute_values"][row]))),
            # os.path.join keeps an absolute path as it is: config.project_path without pathlib's cost per result.
            "image_path": os.path.join(config.PROJECT_DIR, f["image_paths"][row]) if f["image_paths"][row] else "",
            "split": str(f["splits"][row]),
        }

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

    def _image_size(self):
        """The image model's input size, from its metadata (no model loading)."""
        if self._image_model is not None:
            return self._image_model[1]["image_size"]
        _, metadata = load_named_model(self.image_model_name, self.models_dir, self.processed_dir, metadata_only=True)
        return metadata["image_size"]

    def _query_photo(self, image):
        """A query photo as the image model reads it, ``(pixels, sha1, crop)``: cropped to the product when the
        embeddings are of crops (``crop`` as :meth:`similar_to_image` returns it), else whole (``crop`` None)."""
        if self.crop == "none":  # a bad photo fails fast, before the model loads
            return *read_photo(image, self._image_size()), None
        pixels, sha1, data, photo_size = read_photo(image, self._image_size(), with_photo=True)
        self._image_runner()
        size = len(pixels)
        box = crop_boxes(pixels[None], self._activation_maps)[0]
        crop = {"box": photo_box(box, photo_size, size), "width": photo_size[0], "height": photo_size[1]}
        return crop_photo(io.BytesIO(data), box, size), sha1, crop

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
                if self.crop == "auto":
                    self._activation_maps = ActivationMaps(model)
                    self._activation_maps(np.zeros((1, metadata["image_size"], metadata["image_size"], 3), np.uint8))
                self._image_model = runner, metadata
            return self._image_model

    def _text_runner(self):
        """A function from cleaned titles to the text model's category paths' probabilities, and its metadata,
        loaded once; ``None`` (said once) if the model is missing. A bag-of-words model runs in NumPy
        (:mod:`shoplens.models.bag_of_words`).
        """
        with self._lock:
            if self._text_model is None and not self._text_model_missing:
                try:
                    model, metadata = load_named_model(self.text_model_name, self.models_dir, self.processed_dir)
                except ShoplensError as err:
                    self._text_model_missing = True
                    log.warning("text search uses titles and attributes alone: %s", err)
                    return None
                if metadata["modelmode"] != "text":
                    raise ShoplensError(f"SEARCH_TEXT_MODEL={self.text_model_name} is not a text model")
                read_categories = category_reader(model, metadata)
                read_categories(["warm up"])
                self._text_model = read_categories, metadata
            return self._text_model

    def text_index(self):
        """The text search over every title and attribute, built on first use."""
        with self._lock:
            if self._text_search is None:
                self._text_search = TextSearch(self.features["titles"].tolist(), self.features["clean_titles"].tolist(),
                                               self.fields, self.language)
            return self._text_search
