"""The build_features stage: processed splits -> model-ready features.

Outputs, under ``data/processed/features/``:

* ``images_<split>.npy``: every image decoded once, resized to ``image_size``
  (padded to a square), uint8 ``(n, size, size, 3)`` in the split's row order.
  Training memory-maps these, so a ``tf.data`` pipeline streams them with no
  JPEG decoding at all;
* ``vocabulary.txt``: the title vocabulary, most frequent first, fitted on the
  train split only (one token per line, as ``keras.layers.TextVectorization`` reads it);
* ``labels.json``: the classes of each level and the full category paths, from the
  train split only;
* ``features.json``: the options that made them and the data version they came from.
"""
import json
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

from shoplens import ShoplensError, config
from shoplens.data.images import load_image_job
from shoplens.data.make_dataset import load_split, load_summary
from shoplens.outputs import staged_dir, write_json
from shoplens.parallel import imap


def build_features(
    image_size=config.IMAGE_SIZE,
    vocab_size=config.VOCAB_SIZE,
    title_length=config.TITLE_LENGTH,
    processed_dir=config.PROCESSED_DIR,
    features_dir=None,
    workers=config.WORKERS,
    progress=True,
):
    """Build every feature the models need from the processed splits; return the run's summary."""
    started = time.perf_counter()
    if image_size < 8:
        raise ShoplensError(f"IMAGE_SIZE must be at least 8, got {image_size}")
    if vocab_size < 2:
        raise ShoplensError(f"VOCAB_SIZE must be at least 2, got {vocab_size}")
    if title_length < 1:
        raise ShoplensError(f"TITLE_LENGTH must be at least 1, got {title_length}")
    features_dir = Path(features_dir or Path(processed_dir) / "features")
    data = load_summary(processed_dir)
    splits = {name: load_split(name, processed_dir) for name in config.SPLITS}
    train = splits["train"]

    summary = {
        "data_version": data["data_version"],
        "levels": data["levels"],
        "splits": {name: len(part) for name, part in splits.items()},
        "has_images": data["has_images"],
        "has_titles": data["has_titles"],
        "image_size": image_size if data["has_images"] else None,
        "title_length": title_length if data["has_titles"] else None,
    }
    with staged_dir(features_dir) as staging:
        if data["has_images"]:
            for name, part in splits.items():
                _write_images(part["image_path"].tolist(), image_size, staging / f"images_{name}.npy",
                              f"images {name}", workers, progress)
        if data["has_titles"]:
            vocabulary = fit_vocabulary(train["clean_title"], vocab_size)
            (staging / "vocabulary.txt").write_text("\n".join(vocabulary) + "\n")
            lengths = train["clean_title"].str.split().str.len()
            summary["vocab_size"] = len(vocabulary)
            summary["title_tokens"] = {"median": float(lengths.median()), "p95": float(lengths.quantile(0.95)),
                                       "max": int(lengths.max())}
        write_json(label_maps(train, data["levels"]), staging / "labels.json")
        summary["seconds"] = round(time.perf_counter() - started, 2)
        write_json(summary, staging / "features.json")
    return summary


def fit_vocabulary(titles, vocab_size):
    """The ``vocab_size`` most frequent tokens of cleaned titles, most frequent first."""
    vectorizer = CountVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, max_features=vocab_size)
    counts = np.asarray(vectorizer.fit_transform(titles).sum(axis=0)).ravel()
    tokens = vectorizer.get_feature_names_out()
    order = sorted(range(len(tokens)), key=lambda i: (-counts[i], tokens[i]))
    return [tokens[i] for i in order]


def label_maps(train, levels):
    """Classes of each level and the full category paths seen in training, sorted."""
    return {
        "levels": {name: sorted(train[name].unique()) for name in levels},
        "paths": sorted(train["category"].unique()),
    }


def load_features(features_dir=config.FEATURES_DIR):
    """Read ``features.json``, ``labels.json`` and the vocabulary of a build_features run."""
    features_dir = Path(features_dir)
    path = features_dir / "features.json"
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make features` first")
    features = json.loads(path.read_text())
    features["labels"] = json.loads((features_dir / "labels.json").read_text())
    vocabulary = features_dir / "vocabulary.txt"
    features["vocabulary"] = vocabulary.read_text().splitlines() if vocabulary.is_file() else None
    return features


def load_images(split, features_dir=config.FEATURES_DIR):
    """Memory-map the image array of one split."""
    path = Path(features_dir) / f"images_{split}.npy"
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make features` first (on a catalog with images)")
    return np.load(path, mmap_mode="r")


def _write_images(paths, size, out, desc, workers, progress):
    """Decode images straight into a memory-mapped array, so memory stays flat at any catalog size."""
    array = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
    jobs = [(path, size) for path in paths]
    for i, pixels in enumerate(imap(load_image_job, jobs, desc, workers, progress)):
        array[i] = pixels
    array.flush()
    del array

