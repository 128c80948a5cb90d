"""Trained models on disk: ``models/<classmode>_<modelmode>/`` holds ``model.keras`` and ``model.json``.

Reading a model's metadata needs no TensorFlow; Keras is imported only to load the model itself.
"""
import json

from shoplens import ShoplensError, config
from shoplens.outputs import read_stage
from shoplens.pipeline import current_data_version, model_dir, train_target

MODEL_FILE = "model.keras"
METADATA_FILE = "model.json"


def model_name(classmode, modelmode):
    return f"{classmode}_{modelmode}"


def model_crop(metadata):
    """``auto`` for a model trained with ``CROP=auto``, which classifies and embeds the crop of each photo it reads;
    else ``none``."""
    return metadata["options"].get("crop", "none")


def load_model(classmode=config.CLASSMODE, modelmode=config.MODELMODE, models_dir=config.MODELS_DIR,
               processed_dir=config.PROCESSED_DIR, metadata_only=False):
    """Load a trained model and its metadata; refuse one trained on other data than the project's.

    With ``metadata_only``, return ``(None, metadata)``: what a caller checks its inputs against
    before paying for the model.
    """
    name = model_name(classmode, modelmode)
    folder = model_dir(name, models_dir)
    train = f"make {train_target(name)}"
    if read_stage(folder) is None or not (folder / MODEL_FILE).is_file():
        raise ShoplensError(f"{folder}: no trained model; run `{train}` first")
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, ValueError):
        raise ShoplensError(f"{folder / METADATA_FILE}: damaged; run `{train}` again") from None
    current = current_data_version(processed_dir)
    if current is not None and metadata["data"]["data_version"] != current:
        raise ShoplensError(f"{folder}: trained on other data ({metadata['data'].get('catalog_name', 'another')} "
                            f"catalog, version {metadata['data']['data_version']}) than the project's now "
                            f"(version {current}); run `{train}`")
    if metadata_only:
        return None, metadata
    import keras

    import shoplens.models.build_model  # noqa: F401  (registers the custom layer for loading)

    try:
        model = keras.models.load_model(folder / MODEL_FILE)
    except (OSError, ValueError, KeyError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ShoplensError(f"{folder / MODEL_FILE}: cannot load ({first}); run `{train}` again") from None
    return model, metadata


def load_named_model(name, models_dir=config.MODELS_DIR, processed_dir=config.PROCESSED_DIR, metadata_only=False):
    """Load a trained model by its name, ``<classmode>_<modelmode>``; return ``(model, metadata)``."""
    classmode, _, modelmode = name.partition("_")
    if not modelmode:
        raise ShoplensError(f"model name '{name}' is not <classmode>_<modelmode>, e.g. multilabel_image")
    return load_model(classmode, modelmode, models_dir, processed_dir, metadata_only)
