"""What a frozen backbone makes of every image, computed once: pretrained models train on it, not on images.

Below the cut (:func:`shoplens.models.build_model.backbone_cut`) the backbone does not
change while the layers above train, so its activations are the same every epoch.
Computing them once per image instead of once per image per epoch is what lets a
pretrained model train on a CPU in minutes: each step then runs only the few top
blocks being fine-tuned (or, for a frozen backbone, only the heads on the pooled
features).

The activations are published in ``data/processed/backbone/<backbone>-<size>px-<cut>/``
as ``<split>.npy`` (float16), keyed by the backbone, the weights file's fingerprint,
the image size, the cut and the version of the image arrays, so a change of any of
them computes them again. Train items get ``VIEWS`` views, as they are and mirrored:
the one augmentation that survives caching, drawn afresh each epoch. The crops of the
photos (``CROP=auto``) are cached in a folder of their own (``...-crops/``).
"""
import json
import time
from pathlib import Path

import keras
import numpy as np

from shoplens import config
from shoplens.outputs import check_free_space, publish
from shoplens.pipeline import CODE, weights_kind
from shoplens.progress import progress_bar
from shoplens.stages import code_version, file_fingerprint, run_stage, version_of

VIEWS = 2  # train images as they are, and mirrored
BATCH = 64


def backbone_features(model, cut, backbone, weights, images, images_version, processed_dir=config.PROCESSED_DIR,
                      progress=True, crops=False):
    """The activations at ``cut`` of every image, per split: memory-mapped arrays, made once and reused.

    Parameters
    ----------
    model : keras.Model
        A classifier with a pretrained backbone in its own graph (its ``image`` input).
    cut : str
        The layer whose output is cached.
    images : dict
        Split -> ``(n, size, size, 3)`` uint8 images.
    images_version : str
        The version of the image arrays (a part of the features), for the cache's key.
    crops : bool
        The images are the crops of the photos (:mod:`shoplens.models.localise`), not the photos.

    Returns
    -------
    activations : dict
        Split -> ``(n, ...)`` float16 activations; ``train`` is ``(VIEWS, n, ...)``.
    made : dict or None
        What computing them took (``images``, ``seconds``, ``images_per_second``), or ``None`` when the
        cache was up to date.
    """
    size = int(next(iter(images.values())).shape[1])
    key = {"options": {"BACKBONE": backbone, "WEIGHTS": str(weights), "PRETRAINED_IMAGE_SIZE": size, "cut": cut,
                       "splits": list(images)},
           "inputs": {"weights file": file_fingerprint(weights)} if weights_kind(weights) == "file" else {},
           "upstream": {"images": images_version}, "code": code_version(*CODE["backbone features"])}
    folder = Path(processed_dir) / "backbone" / f"{backbone}-{size}px-{cut}{'-crops' if crops else ''}"
    lower = keras.Model(model.get_layer("image").output, model.get_layer(cut).output)

    def build():
        started = time.perf_counter()
        shape = tuple(int(d) for d in lower.output.shape[1:])
        needed = sum((VIEWS if split == "train" else 1) * len(a) for split, a in images.items()) * 2 * np.prod(shape)
        check_free_space(folder.parent, int(needed), "caching the backbone's activations")
        with publish(folder, "backbone features", key, version_of(key)) as staging:
            for split, array in images.items():
                views = VIEWS if split == "train" else 1
                out = np.lib.format.open_memmap(staging / f"{split}.npy", mode="w+", dtype=np.float16,
                                                shape=(views, len(array), *shape) if split == "train" else
                                                (len(array), *shape))
                bar = progress_bar(total=views * len(array), desc=f"backbone features {split}", unit="image",
                                   progress=progress)
                with bar:
                    for view in range(views):
                        target = out[view] if split == "train" else out
                        for i in range(0, len(array), BATCH):
                            batch = np.asarray(array[i:i + BATCH])
                            if view == 1:
                                batch = batch[:, :, ::-1]  # mirrored left to right
                            target[i:i + BATCH] = np.asarray(lower.predict_on_batch(batch), np.float16)
                            bar.update(len(batch))
                out.flush()
                del out
            count = sum((VIEWS if split == "train" else 1) * len(array) for split, array in images.items())
            seconds = time.perf_counter() - started
            summary = {"cut": cut, "shape": list(shape), "views": VIEWS, "images": count,
                       "seconds": round(seconds, 1), "images_per_second": round(count / max(seconds, 1e-9), 1)}
            (staging / "backbone_features.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    made = run_stage(f"backbone features {folder.name}", folder, key, build)
    return {split: np.load(folder / f"{split}.npy", mmap_mode="r") for split in images}, made
