"""The predict_model stage: evaluate a trained model, classify new items and whole catalogs.

``make model_predict`` publishes, for model ``<name>`` = ``<classmode>_<modelmode>``
trained on catalog ``<catalog>``, the folder ``reports/<catalog>/<name>/``:

* ``metrics.json``: per level accuracy beside its baselines, balanced accuracy,
  macro-F1, top-5, calibration and a per-class report (:mod:`shoplens.models.metrics`);
* ``classification_report_<level>.csv``: precision, recall, F1 and support per class;
* ``predictions.csv``: one row per test item;
* ``confusion_<level>.png`` for every level, the deepest included (of many classes, the 25 most frequent),
  ``reliability.png`` and ``training.png``; each figure's title names the model and the catalog.
"""
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shoplens import ShoplensError, config
from shoplens.data.catalog import read_catalog
from shoplens.data.clean_titles import TitleCleaner
from shoplens.data.images import check_image, load_image, load_image_job
from shoplens.data.make_dataset import load_split
from shoplens.models.decode import decode_paths, level_probs_from_paths, path_table
from shoplens.models.inputs import split_inputs
from shoplens.models.metrics import evaluate
from shoplens.models.trained import load_model, model_crop, model_name
from shoplens.outputs import publish
from shoplens.parallel import imap
from shoplens.pipeline import evaluate_key, evaluation_dir, figures_dir
from shoplens.stages import version_of


@dataclass
class Predictions:
    """What a model says of a batch of items."""

    paths: list  # the valid category paths, as in training
    path_index: np.ndarray  # best (decoded) path of each item
    level_probs: list  # per level, (n_items, n_classes) probabilities
    levels: dict  # level name -> classes
    independent: list | None = None  # multilabel: each head's own best class, before decoding

    def path(self, i):
        return self.paths[self.path_index[i]]

    def decoded_indices(self):
        """``(n_items, n_levels)`` class indices (into ``levels``) of each item's decoded path."""
        return path_table(self.paths, self.levels)[self.path_index]

    def decoded_levels(self):
        """``(n_items, n_levels)`` class names of each item's decoded path."""
        return np.array([p.split(config.CATEGORY_SEP) for p in self.paths])[self.path_index]

    def top(self, i, k=3):
        """The ``k`` best classes of each level for item ``i``, with probabilities."""
        return {name: [(classes[j], float(probs[i, j])) for j in np.argsort(-probs[i])[:k]]
                for (name, classes), probs in zip(self.levels.items(), self.level_probs)}


def predict(model, metadata, inputs, photos=None, batch_size=config.BATCH_SIZE):
    """Run the model on a dict of inputs and decode its outputs.

    A model trained with ``CROP=auto`` reads the crop of each photo instead, around the product it finds in
    ``inputs["image"]``, cut out of the photo files ``photos`` (:func:`shoplens.models.localise.crop_photo`).
    """
    # TensorFlow loads here, when a model runs: checking a new item's inputs beforehand stays quick.
    from shoplens.models.datasets import tf_dataset
    from shoplens.models.localise import ActivationMaps, crop_photos, find_products

    if model_crop(metadata) == "auto":
        boxes, _ = find_products(inputs["image"], ActivationMaps(model), progress=False)
        inputs = {**inputs, "image": crop_photos(photos, boxes, metadata["image_size"], progress=False)}
    labels = metadata["labels"]
    levels, paths = labels["levels"], labels["paths"]
    outputs = model.predict(tf_dataset(inputs, batch_size=batch_size), verbose=0)
    if metadata["classmode"] == "multiclass":
        path_probs = outputs["category"]
        return Predictions(paths, path_probs.argmax(axis=1), level_probs_from_paths(path_probs, paths, levels), levels)
    level_probs = [outputs[name] for name in levels]
    index, _ = decode_paths(level_probs, paths, levels)
    return Predictions(paths, index, level_probs, levels, independent=[p.argmax(axis=1) for p in level_probs])


def predictions_frame(predictions, table):
    """One row per item: id, predicted path, and each level of it with its probability."""
    frame = pd.DataFrame({"id": table["id"].to_numpy()})
    if "category" in table:
        frame["category"] = table["category"].to_numpy()
    frame["predicted_category"] = [predictions.path(i) for i in range(len(table))]
    decoded = predictions.decoded_indices()
    for k, ((name, classes), probs) in enumerate(zip(predictions.levels.items(), predictions.level_probs)):
        frame[f"predicted_{name}"] = np.asarray(classes, dtype=object)[decoded[:, k]]
        frame[f"probability_{name}"] = probs[np.arange(len(frame)), decoded[:, k]].round(4)
    return frame


def model_predict(classmode=config.CLASSMODE, modelmode=config.MODELMODE, processed_dir=config.PROCESSED_DIR,
                  features_dir=config.FEATURES_DIR, models_dir=config.MODELS_DIR, reports_dir=config.REPORTS_DIR):
    """Evaluate a trained model on the test split; publish metrics, predictions and figures; return the metrics."""
    from shoplens.visualization.model_figures import plot_confusion_matrix, plot_reliability, plot_training_curves

    key = evaluate_key(model_name(classmode, modelmode), models_dir, processed_dir)
    metrics, (table, predictions, metadata) = score_model(classmode, modelmode, "test", processed_dir, features_dir,
                                                          models_dir)
    catalog, name = metadata["data"]["catalog_name"], metadata["name"]
    frame = predictions_frame(predictions, table)
    with publish(evaluation_dir(catalog, name, reports_dir), "evaluation", key, version_of(key)) as staging:
        frame.to_csv(staging / "predictions.csv", index=False)
        for level, classes in predictions.levels.items():
            plot_confusion_matrix(table[level], frame[f"predicted_{level}"], classes,
                                  f"{name} on {catalog}, test split: {level}", staging / f"confusion_{level}.png")
        plot_training_curves(metadata["history"], f"{name} on {catalog}", staging / "training.png",
                             heads=metadata.get("heads"), best_epoch=metadata.get("best_epoch"),
                             first_epoch=metadata.get("first_epoch", 1))
        plot_reliability(metrics["reliability"], f"{name} on {catalog}", staging / "reliability.png")
        for level, report in metrics["classes"].items():
            pd.DataFrame(report).to_csv(staging / f"classification_report_{level}.csv", index=False)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    # Beside it, the folder for the catalog's other figures (search grids, the notebooks'), e.g. GRID= of make search.
    figures_dir(catalog, reports_dir).mkdir(parents=True, exist_ok=True)
    return metrics


def score_model(classmode=config.CLASSMODE, modelmode=config.MODELMODE, split="test",
                processed_dir=config.PROCESSED_DIR, features_dir=config.FEATURES_DIR, models_dir=config.MODELS_DIR):
    """The metrics of a trained model on one split, and ``(table, predictions, metadata)`` they came from.

    Settings are chosen on ``validate``; ``test`` is what :func:`model_predict` reports, once.
    """
    model, metadata = load_model(classmode, modelmode, models_dir, processed_dir)
    table, inputs = split_inputs(split, modelmode, features_dir, processed_dir, metadata["image_size"])
    photos = [config.project_path(path) for path in table["image_path"]] if "image" in inputs else None
    predictions = predict(model, metadata, inputs, photos)
    train = load_split("train", processed_dir)
    metrics = evaluate(predictions, table, metadata, set(train["clean_title"]) if "clean_title" in train else None)
    metrics.update(model=metadata["name"], catalog=metadata["data"]["catalog_name"], split=split,
                   data_version=metadata["data"]["data_version"])
    return metrics, (table, predictions, metadata)


def item_inputs(metadata, image=None, title=None, language=config.LANGUAGE):
    """The model inputs of one item, an image path and/or a raw title, checked against the model's metadata.

    Call it before loading the model, so that a mistake is said at once.
    """
    modelmode = metadata["modelmode"]
    inputs = {}
    if modelmode in ("image", "combined"):
        if image is None:
            raise ShoplensError(f"the {metadata['name']} model reads images: give --image")
        reason = check_image(str(image))
        if reason == "image_too_large":
            load_image(str(image), metadata["image_size"])  # raises the error that says how large
        if reason:
            raise ShoplensError(f"{image}: cannot use this image ({reason.replace('_', ' ')})")
        inputs["image"] = load_image(str(image), metadata["image_size"])[None]
    if modelmode in ("text", "combined"):
        if title is None:
            raise ShoplensError(f"the {metadata['name']} model reads titles: give --title")
        clean = TitleCleaner(language)(title)
        if not clean:
            raise ShoplensError(f"title '{title}' has no words left after cleaning")
        inputs["title"] = np.array([clean], dtype=object)
    if not inputs:
        raise ShoplensError("give --image and/or --title")
    return inputs


def catalog_inputs(metadata, catalog, columns=None, language=config.LANGUAGE, workers=config.WORKERS):
    """The usable items of a catalog to classify with a model: ``(table, inputs, skipped counts)``.

    Call it before loading the model, so that a mistake is said at once.
    """
    raw = read_catalog(catalog, columns, levels=len(metadata["levels"]), require_category=False)
    table = raw.table
    skipped = {"malformed_row": raw.malformed_rows} if raw.malformed_rows else {}
    modelmode = metadata["modelmode"]
    if modelmode in ("text", "combined"):
        if not raw.has_titles:
            raise ShoplensError(f"{raw.csv_path}: has no titles, but the {metadata['name']} model reads them")
        table = table.assign(clean_title=[TitleCleaner(language)(t) for t in table["title"]])
        if (table["clean_title"] == "").any():
            skipped["empty_title"] = int((table["clean_title"] == "").sum())
        table = table[table["clean_title"] != ""]
    if modelmode in ("image", "combined"):
        if not raw.has_images:
            raise ShoplensError(f"{raw.csv_path}: has no images, but the {metadata['name']} model reads them")
        reasons = list(imap(check_image, table["image_path"].tolist(), "checking images", workers))
        ok = np.array([r is None for r in reasons], dtype=bool)
        for reason in set(reasons) - {None}:
            skipped[reason] = reasons.count(reason)
        table = table[ok]
    table = table.reset_index(drop=True)
    if table.empty:
        why = ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in skipped.items()) or "it has no rows"
        raise ShoplensError(f"{raw.csv_path}: no item could be classified ({why})")
    inputs = {}
    if modelmode in ("image", "combined"):
        jobs = [(p, metadata["image_size"]) for p in table["image_path"]]
        inputs["image"] = np.stack(list(imap(load_image_job, jobs, "loading images", workers)))
    if modelmode in ("text", "combined"):
        inputs["title"] = table["clean_title"].to_numpy(dtype=object)
    if "category_parts" in table:
        table["category"] = [config.CATEGORY_SEP.join(p) for p in table["category_parts"]]
        for k, name in enumerate(metadata["levels"]):
            table[name] = [p[k] if p else "" for p in table["category_parts"]]
    return table, inputs, {k: v for k, v in skipped.items() if v}
