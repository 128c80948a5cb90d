"""The extract_features stage: image embeddings of every item -> ``models/embeddings/``.

The trained image model (``SEARCH_IMAGE_MODEL``, ``multilabel_image`` by default:
a photo query is classified and embedded from the photo alone) is cut at
``EMBEDDING_LAYER``, the layer before its heads. Every item of the catalog, all
splits, is run through it from the images build_features decoded once; the
embeddings are L2-normalised, so a dot product is their cosine similarity.

The folder, published in one step, holds ``extracted_features.npz`` and a JSON
summary of the run. The ``.npz`` holds, row-aligned with ``embeddings``
(float32, ``(n, dim)``): ``ids``, ``category`` (the full path), ``labels``
(``(n, levels)``, one column per name in ``levels``), ``attribute_values``
(``(n, attributes)``, one column per name in ``attributes``), ``image_paths``
(as the splits store them: see :func:`shoplens.config.project_path`),
``image_sha1`` (of the photo's bytes), ``titles``, ``clean_titles`` and ``splits``; and, as 0-d arrays, the ``model``
and ``layer`` they came from, its ``crop`` (``CROP``: with ``auto`` the model was trained on
crops too, each photo is cropped to the product first, :mod:`shoplens.models.localise`, and
so is every query photo), the ``data_version`` of the splits, the ``fingerprint`` the search
index checks, and ``item_range`` (first item, end, items in all) of this shard.

Extraction can be split into ``num_shards`` jobs, each embedding a contiguous
slice of the items into ``models/embeddings-<shard>-of-<num_shards>/``;
:func:`merge_features` joins them into ``models/embeddings/``.
"""
import hashlib
import json
import time
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from shoplens import ShoplensError, config
from shoplens.data.make_dataset import load_split, load_summary
from shoplens.features.build_features import load_features, load_images
from shoplens.models.localise import ActivationMaps, crop_boxes, crop_photos
from shoplens.models.trained import load_named_model, model_crop
from shoplens.outputs import publish
from shoplens.pipeline import current_data_version, embeddings_dir, extract_key, merge_key
from shoplens.progress import progress_bar

TEXT_ARRAYS = ("ids", "category", "labels", "attribute_values", "image_paths", "image_sha1", "titles", "clean_titles",
               "splits")
INFO = ("model", "layer", "data_version", "fingerprint")
FILE = "extracted_features.npz"


def features_path(shard=0, num_shards=1, models_dir=config.MODELS_DIR):
    """The ``.npz`` of one shard, or of all items when there is one shard."""
    return embeddings_dir(shard, num_shards, models_dir) / FILE


def extract_features(
    model_name=config.SEARCH_IMAGE_MODEL,
    layer=config.EMBEDDING_LAYER,
    batch_size=config.EXTRACT_BATCH_SIZE,
    shard=config.SHARD,
    num_shards=config.NUM_SHARDS,
    processed_dir=config.PROCESSED_DIR,
    features_dir=config.FEATURES_DIR,
    models_dir=config.MODELS_DIR,
    progress=True,
):
    """Embed every item (or one shard of them) with the image model; publish the ``.npz``; return the run's summary.

    Parameters
    ----------
    model_name : str
        A trained image model, ``<classmode>_image``.
    layer : str
        The layer whose output is the embedding.
    batch_size : int
        Images per forward pass.
    shard, num_shards : int
        Embed the ``shard``-th of ``num_shards`` contiguous slices of the items
        (in split order, then row order); ``num_shards=1`` embeds them all.
    processed_dir, features_dir, models_dir : path
        Where the splits, the features and the models are.
    progress : bool
        Show a progress bar.
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise ShoplensError(f"EXTRACT_BATCH_SIZE must be at least 1, got {batch_size}")
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ShoplensError(f"SHARD must be in 0..NUM_SHARDS-1 and NUM_SHARDS at least 1, got {shard} of {num_shards}")
    key = extract_key(model_name, layer, shard, num_shards, models_dir, processed_dir)
    model, metadata = load_named_model(model_name, models_dir, processed_dir)
    crop = model_crop(metadata)
    data = load_summary(processed_dir)
    load_features(features_dir, data["data_version"])
    embedder = embedding_model(model, layer, model_name)
    activation_maps = ActivationMaps(model) if crop == "auto" else None

    tables = {name: load_split(name, processed_dir) for name in data["splits"]}
    images = {name: load_images(name, features_dir, metadata["image_size"]) for name in tables}
    for name, table in tables.items():
        if len(images[name]) != len(table):
            raise ShoplensError(f"{features_dir}: images of '{name}' do not match the split; run `make features`")
    table = pd.concat(tables.values(), keys=list(tables), names=["split"]).reset_index(level=0).reset_index(drop=True)
    total = len(table)
    start, stop = total * shard // num_shards, total * (shard + 1) // num_shards

    embeddings = np.zeros((stop - start, embedder.output.shape[-1]), dtype=np.float32)
    embedding_started = time.perf_counter()
    bar = progress_bar(total=stop - start, desc="extracting features", progress=progress)
    with bar:
        for i in range(start, stop, batch_size):
            j = min(i + batch_size, stop)
            batch = _rows(images, i, j)
            if activation_maps is not None:  # one process: a pool per batch would cost more than it saves
                photos = [config.project_path(path) for path in table["image_path"].iloc[i:j]]
                batch = crop_photos(photos, crop_boxes(batch, activation_maps), batch.shape[1], workers=1,
                                    progress=False)
            embeddings[i - start:j - start] = np.asarray(embedder.predict_on_batch(batch), np.float32)
            bar.update(j - i)
    embedding_seconds = time.perf_counter() - embedding_started
    embeddings = normalise(embeddings)

    part = table.iloc[start:stop]
    arrays = {
        "ids": part["id"].to_numpy(str),
        "embeddings": embeddings,
        "category": part["category"].to_numpy(str),
        "levels": np.array(data["levels"], dtype=str),
        "labels": _text_table(part, data["levels"]),
        "attributes": np.array(data["attributes"], dtype=str),
        "attribute_values": _text_table(part, data["attributes"]),
        "image_paths": part["image_path"].to_numpy(str),
        # The photo's bytes, so that a search by a catalog photo can leave that product out.
        "image_sha1": (part["image_sha1"] if "image_sha1" in part else pd.Series([""] * len(part))).to_numpy(str),
        "titles": (part["title"] if "title" in part else pd.Series([""] * len(part))).to_numpy(str),
        "clean_titles": (part["clean_title"] if "clean_title" in part else pd.Series([""] * len(part))).to_numpy(str),
        "splits": part["split"].to_numpy(str),
        "model": np.array(model_name),
        "layer": np.array(layer),
        "crop": np.array(crop),
        "data_version": np.array(data["data_version"]),
        "item_range": np.array([start, stop, total]),
    }
    return write_features(arrays, embeddings_dir(shard, num_shards, models_dir), key,
                          seconds=round(time.perf_counter() - started, 2),
                          items_per_second=round((stop - start) / max(embedding_seconds, 1e-9), 1))


def merge_features(num_shards, models_dir=config.MODELS_DIR, processed_dir=config.PROCESSED_DIR):
    """Join the ``.npz`` of every shard, in order, into ``models/embeddings/``; return its summary."""
    if num_shards < 1:
        raise ShoplensError(f"NUM_SHARDS must be at least 1, got {num_shards}")
    key = merge_key(num_shards, models_dir)
    parts = [load_features_file(features_path(shard, num_shards, models_dir),
                                f"model_extract_features SHARD={shard} NUM_SHARDS={num_shards}", processed_dir)
             for shard in range(num_shards)]
    first = parts[0]
    for part in parts:
        part.setdefault("crop", np.array("none"))  # made before crops were
    for shard, part in enumerate(parts):
        for name in ("model", "layer", "crop", "data_version"):
            if str(part[name]) != str(first[name]):
                raise ShoplensError(f"{features_path(shard, num_shards, models_dir)}: made with {name} "
                                    f"'{part[name]}', shard 0 with '{first[name]}'; extract every shard again")
    ends = [int(p["item_range"][0]) for p in parts[1:]] + [int(first["item_range"][2])]
    if int(first["item_range"][0]) != 0 or [int(p["item_range"][1]) for p in parts] != ends:
        raise ShoplensError(f"the {num_shards} shards in {models_dir} do not cover the items one after another; "
                            "extract every shard again with the same NUM_SHARDS")
    arrays = {name: np.concatenate([p[name] for p in parts]) for name in TEXT_ARRAYS + ("embeddings",)}
    arrays.update({name: first[name] for name in ("levels", "attributes", "model", "layer", "crop", "data_version")})
    arrays["item_range"] = np.array([0, int(first["item_range"][2]), int(first["item_range"][2])])
    return write_features(arrays, embeddings_dir(models_dir=models_dir), key, merged_shards=num_shards)


def write_features(arrays, directory, key, **extra):
    """Publish the arrays (with their fingerprint added) as ``directory/extracted_features.npz``, uncompressed,
    with a JSON summary of them beside it; return the summary."""
    arrays = {**arrays, "fingerprint": np.array(fingerprint(arrays["ids"], arrays["embeddings"]))}
    start, stop, total = (int(v) for v in arrays["item_range"])
    summary = {"path": str(Path(directory) / FILE), "model": str(arrays["model"]), "layer": str(arrays["layer"]),
               "crop": str(arrays["crop"]), "data_version": str(arrays["data_version"]),
               "fingerprint": str(arrays["fingerprint"]),
               "items": stop - start, "item_range": [start, stop], "items_in_all": total,
               "dim": int(arrays["embeddings"].shape[1]), "created": datetime.now().isoformat(timespec="seconds"),
               **extra}
    # Versioned by content: an index built from other vectors is never taken for up to date.
    with publish(directory, "embeddings", key, summary["fingerprint"]) as staging:
        with open(staging / FILE, "wb") as file:
            # Uncompressed: loading is a plain read, and embeddings hardly compress anyway.
            np.savez(file, **arrays)
        (staging / "extracted_features.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_features_file(path=config.EXTRACTED_FEATURES, target="model_extract_features",
                       processed_dir=config.PROCESSED_DIR):
    """Read an ``.npz`` written by this stage into a dict of arrays; ``target`` is the make target that makes it.

    Refuses embeddings of other data than the project's splits now published.
    """
    path = Path(path)
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make {target}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ShoplensError(f"{path}: cannot read ({first}); run `make {target}` again") from None
    missing = [key for key in (*TEXT_ARRAYS, "embeddings", *INFO) if key not in arrays]
    if missing:
        raise ShoplensError(f"{path}: lacks {', '.join(missing)}; run `make {target}` again")
    current = current_data_version(processed_dir)
    if current is not None and str(arrays["data_version"]) != current:
        raise ShoplensError(f"{path}: embeddings of other data (version {arrays['data_version']}) than the "
                            f"project's now (version {current}); run `make {target}`")
    return arrays


def fingerprint(ids, embeddings):
    """A short hash of the ids and embeddings, recorded by the index built from them."""
    digest = hashlib.sha1()
    digest.update("\n".join(ids.tolist()).encode())
    digest.update(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def normalise(vectors):
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


def embedding_model(model, layer=config.EMBEDDING_LAYER, name=config.SEARCH_IMAGE_MODEL):
    """The part of an image model from its image input to ``layer``."""
    import keras

    names = [lay.name for lay in model.layers]
    if "image" not in names or "title" in names:
        raise ShoplensError(f"the model {name} is not an image model: search needs <classmode>_image (the photo "
                            "query is classified from the photo alone); set SEARCH_IMAGE_MODEL")
    if layer not in names:
        raise ShoplensError(f"the model {name} has no layer '{layer}' (EMBEDDING_LAYER); its layers: "
                            f"{', '.join(names)}")
    return keras.Model(model.get_layer("image").output, model.get_layer(layer).output, name=f"{name}_embedding")


def _rows(arrays, start, stop):
    """Rows ``start:stop`` of the splits' image arrays taken one after another."""
    parts, offset = [], 0
    for array in arrays.values():
        lo, hi = max(start - offset, 0), min(stop - offset, len(array))
        if lo < hi:
            parts.append(np.asarray(array[lo:hi]))
        offset += len(array)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _text_table(table, columns):
    """``(n, len(columns))`` strings; ``(n, 0)`` when there are no columns."""
    return table[list(columns)].to_numpy(str).reshape(len(table), len(columns))
