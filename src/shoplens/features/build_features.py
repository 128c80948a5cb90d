"""The build_features stage: processed splits -> model-ready features in ``data/processed/features/``.

* ``images_<size>_<split>.npy``: every image decoded once, resized to ``size``
  (padded to a square), uint8 ``(n, size, size, 3)`` in the split's row order.
  Training memory-maps these, so a ``tf.data`` pipeline streams them with no
  JPEG decoding at all;
* ``vocabulary.txt``: the title vocabulary, most frequent first, fitted on the
  train split only (one token per line, as ``keras.layers.TextVectorization`` reads it);
* ``labels.json``: the classes of each level and the full category paths, from the
  train split only;
* ``features.json``: the options that made them, the data version they came from,
  and a version per part (``labels``, ``text``, ``images_<size>``), so that a model
  is made again only when the part it reads changed (a new vocabulary does not
  retrain an image model). A run reuses unchanged parts of the previous one.

The folder is published in one step (:func:`shoplens.outputs.publish`).
"""
import errno
import json
import os
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

from shoplens import ShoplensError, config
from shoplens.data.images import load_image_job
from shoplens.data.make_dataset import load_split, load_summary
from shoplens.outputs import check_free_space, publish, read_stage
from shoplens.parallel import imap
from shoplens.pipeline import feature_part_versions, features_key
from shoplens.stages import version_of


def build_features(
    image_size=config.IMAGE_SIZE,
    vocab_size=config.VOCAB_SIZE,
    title_length=config.TITLE_LENGTH,
    pretrained_image_size=None,
    processed_dir=config.PROCESSED_DIR,
    workers=config.WORKERS,
    progress=True,
):
    """Build every feature the models need from the processed splits, publish them; return the run's summary.

    Images are made at ``image_size`` (the small CNN's) and, given ``pretrained_image_size``, at that size too
    (a pretrained backbone's).
    """
    started = time.perf_counter()
    for size in (image_size, pretrained_image_size or image_size):
        check_image_size(size)
    if vocab_size < 2:
        raise ShoplensError(f"VOCAB_SIZE must be at least 2, got {vocab_size}")
    if title_length < 1:
        raise ShoplensError(f"TITLE_LENGTH must be at least 1, got {title_length}")
    features_dir = config.features_dir(processed_dir)
    key = features_key(image_size, vocab_size, title_length, pretrained_image_size, processed_dir)
    data = load_summary(processed_dir)
    splits = {name: load_split(name, processed_dir) for name in data["splits"]}
    train = splits["train"]
    sizes = sorted({image_size, pretrained_image_size or image_size}) if data["has_images"] else []
    versions = feature_part_versions(data["data_version"], sizes, vocab_size if data["has_titles"] else None,
                                     title_length)
    previous = _previous(features_dir)

    summary = {
        "data_version": data["data_version"],
        "levels": data["levels"],
        "splits": {name: len(part) for name, part in splits.items()},
        "has_images": data["has_images"],
        "has_titles": data["has_titles"],
        "image_size": image_size if data["has_images"] else None,
        "pretrained_image_size": pretrained_image_size if data["has_images"] else None,
        "image_sizes": sizes,
        "title_length": title_length if data["has_titles"] else None,
        "versions": versions,
    }
    needed = sum(len(part) * size * size * 3 for size in sizes for part in splits.values()
                 if previous.get(f"images_{size}") != versions[f"images_{size}"])
    check_free_space(features_dir.parent, needed, "make features")
    with publish(features_dir, "features", key, version_of(key)) as staging:
        for size in sizes:
            for name, part in splits.items():
                out = staging / images_file(name, size)
                if previous.get(f"images_{size}") == versions[f"images_{size}"]:
                    os.link(features_dir / out.name, out)  # unchanged: the previous run's array, no copy
                    continue
                _write_images([str(config.project_path(p)) for p in part["image_path"]], size, out,
                              f"images {name} {size}px", workers, progress)
        if data["has_titles"]:
            vocabulary = fit_vocabulary(train["clean_title"], vocab_size)
            (staging / "vocabulary.txt").write_text("\n".join(vocabulary) + "\n")
            lengths = train["clean_title"].str.split().str.len()
            summary["vocab_size"] = len(vocabulary)
            summary["title_tokens"] = {"median": float(lengths.median()), "p95": float(lengths.quantile(0.95)),
                                       "max": int(lengths.max())}
        (staging / "labels.json").write_text(json.dumps(label_maps(train, data["levels"]), indent=2) + "\n")
        summary["seconds"] = round(time.perf_counter() - started, 2)
        (staging / "features.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def check_image_size(size):
    """Refuse an image side the pipeline cannot sensibly make arrays of."""
    if not 8 <= size <= config.MAX_IMAGE_SIZE:
        raise ShoplensError(f"IMAGE_SIZE must be from 8 to {config.MAX_IMAGE_SIZE} pixels, got {size}")


def images_file(split, size):
    """The name of a split's image array at one size."""
    return f"images_{size}_{split}.npy"


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


def load_features(features_dir=config.FEATURES_DIR, data_version=None):
    """Read ``features.json``, ``labels.json`` and the vocabulary of a build_features run.

    With ``data_version``, refuse features made from other data.
    """
    features_dir = Path(features_dir)
    path = features_dir / "features.json"
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make features` first")
    try:
        features = json.loads(path.read_text())
        features["labels"] = json.loads((features_dir / "labels.json").read_text())
    except (OSError, ValueError):
        raise ShoplensError(f"{features_dir}: damaged; run `make features` again") from None
    if data_version is not None and features["data_version"] != data_version:
        raise ShoplensError(f"{features_dir}: made from other data than the project's splits; run `make features`")
    vocabulary = features_dir / "vocabulary.txt"
    features["vocabulary"] = vocabulary.read_text().splitlines() if vocabulary.is_file() else None
    return features


def load_images(split, features_dir=config.FEATURES_DIR, size=config.IMAGE_SIZE):
    """Memory-map the image array of one split at one size."""
    path = Path(features_dir) / images_file(split, size)
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make features IMAGE_SIZE={size}` (on a catalog with images)")
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise ShoplensError(f"{path}: cannot read ({err}); run `make features` again") from None


def _previous(features_dir):
    """The part versions of the features published now (empty if none)."""
    if read_stage(features_dir) is None:
        return {}
    try:
        return json.loads((Path(features_dir) / "features.json").read_text()).get("versions", {})
    except (OSError, ValueError):
        return {}


def _write_images(paths, size, out, desc, workers, progress):
    """Decode images straight into a memory-mapped array, so memory stays flat at any catalog size.

    The file's blocks are allocated first: a memory-mapped write to a full disk would
    otherwise kill the process with SIGBUS instead of raising an error.
    """
    array = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
    with open(out, "r+b") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
    jobs = [(path, size) for path in paths]
    for i, pixels in enumerate(imap(load_image_job, jobs, desc, workers, progress)):
        array[i] = pixels
    array.flush()
    del array
