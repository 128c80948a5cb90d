"""Model inputs and targets from the features stage, as NumPy arrays (no TensorFlow needed)."""
import numpy as np

from shoplens import ShoplensError, config
from shoplens.data.make_dataset import load_split
from shoplens.features.build_features import load_images

CLASSMODES = ("multilabel", "multiclass")
MODELMODES = ("combined", "image", "text")


def check_modes(classmode, modelmode, features):
    """Refuse a mode the catalog cannot serve, saying why."""
    if classmode not in CLASSMODES:
        raise ShoplensError(f"unknown CLASSMODE '{classmode}' (choose from {', '.join(CLASSMODES)})")
    if modelmode not in MODELMODES:
        raise ShoplensError(f"unknown MODELMODE '{modelmode}' (choose from {', '.join(MODELMODES)})")
    if modelmode in ("image", "combined") and not features["has_images"]:
        raise ShoplensError(f"MODELMODE={modelmode} needs images, but this catalog has none; use MODELMODE=text")
    if modelmode in ("text", "combined") and not features["has_titles"]:
        raise ShoplensError(f"MODELMODE={modelmode} needs titles, but this catalog has none; use MODELMODE=image")


def heads(classmode, labels):
    """Output name -> number of classes."""
    if classmode == "multiclass":
        return {"category": len(labels["paths"])}
    return {name: len(classes) for name, classes in labels["levels"].items()}


def encode_targets(table, classmode, labels):
    """Class indices per output; -1 where a class was never seen in training."""
    if classmode == "multiclass":
        columns = {"category": ("category", labels["paths"])}
    else:
        columns = {name: (name, classes) for name, classes in labels["levels"].items()}
    targets = {}
    for output, (column, classes) in columns.items():
        index = {c: i for i, c in enumerate(classes)}
        targets[output] = np.array([index.get(v, -1) for v in table[column]], dtype=np.int32)
    return targets


def split_inputs(split, modelmode, features_dir=config.FEATURES_DIR, processed_dir=config.PROCESSED_DIR,
                 image_size=config.IMAGE_SIZE):
    """The processed table of a split and the model inputs of its rows (images at ``image_size``)."""
    table = load_split(split, processed_dir)
    inputs = {}
    if modelmode in ("image", "combined"):
        inputs["image"] = load_images(split, features_dir, image_size)
        if len(inputs["image"]) != len(table):
            raise ShoplensError(f"{features_dir}: images of '{split}' do not match the split; run `make features`")
    if modelmode in ("text", "combined"):
        inputs["title"] = table["clean_title"].to_numpy(dtype=object)
    return table, inputs


def balanced_weights(labels):
    """Per-item weights inversely proportional to the frequency of its class, averaging 1."""
    counts = np.bincount(labels)
    weights = len(labels) / (len(counts) * counts[labels])
    return (weights / weights.mean()).astype(np.float32)
