"""The stages of the pipeline, what each one depends on, and where it publishes: the project's DAG.

Each ``*_key`` function returns the key of one stage (:mod:`shoplens.stages`):
the options that change its outputs, fingerprints of the files it reads, the
versions of the stages it reads, and a hash of its code. The command line
compares it with the key published beside the stage's outputs to decide whether
to run the stage; the stage records it when it publishes. Nothing here imports
TensorFlow, so deciding that a stage is up to date takes milliseconds.

Data flows one way::

    demo catalog -> data -> features -> model (per CLASSMODE_MODELMODE) -> evaluation
                                              \\-> embeddings -> index -> search evaluation
"""
import json
from pathlib import Path

from shoplens import ShoplensError, config
from shoplens.models.backbones import is_pretrained, takes_weights
from shoplens.outputs import read_stage
from shoplens.stages import code_version, file_fingerprint, folder_fingerprint, published_version, version_of

# The source files of each stage: a change to one of them makes the stage run again.
CODE = {
    "demo catalog": ("data/demo_catalog.py",),
    "cleaned catalog": ("data/catalog.py", "data/clean_titles.py", "data/images.py", "data/stopwords/*.txt"),
    "data": ("data/make_dataset.py", "data/split.py"),
    "images": ("data/images.py", "features/build_features.py"),
    "text features": ("features/build_features.py",),
    "model": ("models/backbones.py", "models/build_model.py", "models/datasets.py", "models/distribute.py",
              "models/inputs.py", "models/localise.py", "models/normsoftmax.py", "models/train_model.py"),
    "backbone features": ("models/backbone_features.py", "models/backbones.py", "models/build_model.py"),
    "evaluation": ("models/predict_model.py", "models/decode.py", "visualization/model_figures.py"),
    "audit": ("audit/audit.py", "audit/duplicates.py", "audit/label_issues.py", "visualization/audit_figures.py"),
    "embeddings": ("models/extract_features.py", "models/localise.py"),
    "index": ("search/index.py",),
    "search evaluation": ("search/evaluate.py",),
}


def demo_catalog_key(n=config.DEMO_N, seed=config.DEMO_SEED, image_size=config.DEMO_IMAGE_SIZE,
                     planted=config.DEMO_PLANTED, clutter=config.DEMO_CLUTTER):
    """The demo catalog: its generator's options and code."""
    return {"options": {"DEMO_N": n, "DEMO_SEED": seed, "DEMO_IMAGE_SIZE": image_size, "DEMO_PLANTED": planted,
                        "DEMO_CLUTTER": clutter},
            "code": code_version(*CODE["demo catalog"])}


def catalog_source(catalog):
    """The path of a ``CATALOG`` option: ``demo`` is the demo catalog's folder."""
    return config.DEMO_CATALOG_DIR if str(catalog) == "demo" else Path(catalog)


def clean_key(catalog, columns, levels, language, image_dir=None):
    """The cleaned catalog: the catalog file, its image folder, how to read it, the cleaning code."""
    from shoplens.data.catalog import locate

    if str(catalog) == "demo" and not config.DEMO_CATALOG_DIR.exists():
        raise ShoplensError(f"{config.DEMO_CATALOG_DIR}: the demo catalog is not made yet; run `make demo-catalog`")
    csv_path, _ = locate(catalog_source(catalog))
    images = Path(image_dir) if image_dir else csv_path.parent / "images"
    inputs = {csv_path.name: file_fingerprint(csv_path)}
    if images.is_dir():
        inputs["image folder"] = folder_fingerprint(images)
    column_options = {"ID_COL": columns.id, "TITLE_COL": columns.title, "IMAGE_COL": columns.image,
                      "CATEGORY_COL": columns.category, "CATEGORY_SEP": columns.category_sep,
                      "LEVEL_COLS": ",".join(columns.level_cols) if columns.level_cols else None,
                      "IMAGE_DIR": str(image_dir) if image_dir else None}
    options = {"CATALOG": str(catalog), **{k: v for k, v in column_options.items() if v is not None},
               "LEVELS": levels, "LANGUAGE": language}
    return {"options": options, "inputs": inputs, "code": code_version(*CODE["cleaned catalog"])}


def dataset_key(catalog=config.CATALOG, columns=None, levels=config.LEVELS, language=config.LANGUAGE,
                min_items=config.MIN_ITEMS, subsample=config.SUBSAMPLE, split_ratios=config.SPLIT_RATIOS,
                seed=config.SEED, group_split=config.GROUP_SPLIT, image_dir=None, unseen=config.UNSEEN):
    """The splits: everything the cleaned catalog depends on, and how it is filtered and split."""
    from shoplens.data.catalog import CatalogColumns

    key = clean_key(catalog, columns or CatalogColumns(), levels, language, image_dir)
    key["options"].update({"MIN_ITEMS": min_items, "SUBSAMPLE": subsample, "SPLIT": list(split_ratios),
                           "SEED": seed, "GROUP_SPLIT": group_split, "UNSEEN": bool(unseen)})
    key["code"] = code_version(*CODE["cleaned catalog"], *CODE["data"])
    return key


def features_key(image_size=config.IMAGE_SIZE, vocab_size=config.VOCAB_SIZE, title_length=config.TITLE_LENGTH,
                 pretrained_image_size=None, processed_dir=config.PROCESSED_DIR):
    """The features: the data and the feature options (``pretrained_image_size``: also images of that side,
    for a pretrained backbone)."""
    data = published_version(config.splits_dir(processed_dir), "data")
    return {"options": {"IMAGE_SIZE": image_size, "VOCAB_SIZE": vocab_size, "TITLE_LENGTH": title_length,
                        "PRETRAINED_IMAGE_SIZE": pretrained_image_size},
            "upstream": {"data": data}, "code": code_version(*CODE["images"], *CODE["text features"])}


def features_summary(features_dir=config.FEATURES_DIR):
    """The ``features.json`` of the features now published."""
    published_version(features_dir, "features")
    try:
        return json.loads((Path(features_dir) / "features.json").read_text())
    except (OSError, ValueError):
        raise ShoplensError(f"{features_dir}: damaged; run `make features` again") from None


def current_data_version(processed_dir=config.PROCESSED_DIR):
    """The ``data_version`` of the splits now published, or ``None`` if there are none."""
    record = read_stage(config.splits_dir(processed_dir))
    return record["version"] if record else None


def feature_part_versions(data, image_sizes, vocab_size, title_length):
    """The version of each part of the features (``labels``, ``images_<size>``, ``text``).

    A model records the parts it reads, so that a new vocabulary does not retrain an
    image model, nor a new image size a text model.
    """
    versions = {"labels": data}
    for size in image_sizes:
        versions[f"images_{size}"] = version_of({"data": data, "size": size, "code": code_version(*CODE["images"])})
    if vocab_size is not None:
        versions["text"] = version_of({"data": data, "vocab_size": vocab_size, "title_length": title_length,
                                       "code": code_version(*CODE["text features"])})
    return versions


def weights_kind(weights):
    """``"imagenet"`` (downloaded), ``"none"`` (random) or ``"file"`` (a local weights file)."""
    return str(weights) if str(weights) in ("imagenet", "none") else "file"


def resolve_learning_rate(learning_rate, modelmode):
    """A positive learning rate as a float; ``"auto"`` is the model mode's from ``config.LEARNING_RATES``."""
    if learning_rate == "auto":
        return config.LEARNING_RATES[modelmode]
    try:
        rate = float(learning_rate)
    except (TypeError, ValueError):
        rate = 0.0
    if not rate > 0:
        raise ShoplensError(f"LEARNING_RATE must be a positive number or auto, not '{learning_rate}'")
    return rate


def train_key(classmode=config.CLASSMODE, modelmode=config.MODELMODE, backbone=config.BACKBONE,
              weights=config.WEIGHTS, finetune=config.FINETUNE, text_encoder=config.TEXT_ENCODER, epochs=config.EPOCHS,
              batch_size=config.BATCH_SIZE, learning_rate=config.LEARNING_RATE, patience=config.PATIENCE,
              class_weights=config.CLASS_WEIGHTS, precision=config.PRECISION, seed=config.SEED,
              strategy=config.STRATEGY, finetune_blocks=config.FINETUNE_BLOCKS, finetune_epochs=config.FINETUNE_EPOCHS,
              finetune_learning_rate=config.FINETUNE_LEARNING_RATE, features_dir=config.FEATURES_DIR,
              loss=config.LOSS, temperature=config.TEMPERATURE, margin=config.MARGIN,
              vit_patch_size=config.VIT_PATCH_SIZE, vit_layers=config.VIT_LAYERS, crop=config.CROP):
    """A model: the options of its mode, the parts of the features it reads, a weights file it loads, its code."""
    features = features_summary(features_dir)
    options = {"CLASSMODE": classmode, "MODELMODE": modelmode, "EPOCHS": epochs, "BATCH_SIZE": batch_size,
               "LEARNING_RATE": resolve_learning_rate(learning_rate, modelmode), "PATIENCE": patience,
               "CLASS_WEIGHTS": bool(class_weights), "PRECISION": precision, "SEED": seed, "STRATEGY": strategy}
    versions = features["versions"]
    upstream = {"data": versions["labels"]}
    inputs = {}
    if modelmode != "text" and features["has_images"]:
        options["BACKBONE"] = backbone
        options["LOSS"] = loss
        if modelmode == "image":  # the models that find the product in a photo themselves
            options["CROP"] = crop
        if loss == "normsoftmax":
            options.update(TEMPERATURE=temperature, MARGIN=margin)
        size = features.get("pretrained_image_size") if is_pretrained(backbone) else features["image_size"]
        upstream["images"] = versions.get(f"images_{size}")
        if takes_weights(backbone):
            options["WEIGHTS"] = str(weights)
            if weights_kind(weights) == "file" and Path(weights).is_file():
                inputs["weights file"] = file_fingerprint(weights)
        if is_pretrained(backbone):
            options["FINETUNE"] = bool(finetune)
            if finetune:
                options.update(FINETUNE_BLOCKS=finetune_blocks, FINETUNE_EPOCHS=finetune_epochs,
                               FINETUNE_LEARNING_RATE=resolve_learning_rate(finetune_learning_rate, modelmode))
        if backbone == "vit":  # the options on the command line, and the configuration's constants
            options.update(VIT_PATCH_SIZE=vit_patch_size, VIT_LAYERS=vit_layers, VIT_HIDDEN_DIM=config.VIT_HIDDEN_DIM,
                           VIT_HEADS=config.VIT_HEADS, VIT_MLP_DIM=config.VIT_MLP_DIM)
    if modelmode != "image" and features["has_titles"]:
        options["TEXT_ENCODER"] = text_encoder
        upstream["text features"] = versions["text"]
    return {"options": options, "inputs": inputs, "upstream": upstream, "code": code_version(*CODE["model"])}


def model_dir(name, models_dir=config.MODELS_DIR):
    """The folder of a trained model, ``models/<classmode>_<modelmode>``."""
    return Path(models_dir) / name


def train_target(name):
    """The make target that trains a model of this name."""
    classmode, _, modelmode = name.partition("_")
    return f"model_train CLASSMODE={classmode} MODELMODE={modelmode}"


def evaluate_key(name, models_dir=config.MODELS_DIR, processed_dir=config.PROCESSED_DIR):
    """An evaluation: the model and the test split."""
    return {"upstream": {"model": published_version(model_dir(name, models_dir), train_target(name)),
                         "data": published_version(config.splits_dir(processed_dir), "data")},
            "code": code_version(*CODE["evaluation"])}


def evaluation_dir(catalog, name, reports_dir=config.REPORTS_DIR):
    """The folder of a model's evaluation on a catalog: ``reports/<catalog>/<name>``."""
    return Path(reports_dir) / catalog / name


def embeddings_dir(shard=0, num_shards=1, models_dir=config.MODELS_DIR):
    """The folder of the embeddings of one shard, or of all items when there is one shard."""
    name = config.EMBEDDINGS_DIR.name
    return Path(models_dir) / (name if num_shards == 1 else f"{name}-{shard}-of-{num_shards}")


def extract_key(model_name=config.SEARCH_IMAGE_MODEL, layer=config.EMBEDDING_LAYER, shard=config.SHARD,
                num_shards=config.NUM_SHARDS, models_dir=config.MODELS_DIR, processed_dir=config.PROCESSED_DIR):
    """The embeddings: the image model (which says whether photos are cropped), the data, the options."""
    return {"options": {"SEARCH_IMAGE_MODEL": model_name, "EMBEDDING_LAYER": layer, "SHARD": shard,
                        "NUM_SHARDS": num_shards},
            "upstream": {"model": published_version(model_dir(model_name, models_dir), train_target(model_name)),
                         "data": published_version(config.splits_dir(processed_dir), "data")},
            "code": code_version(*CODE["embeddings"])}


def merge_key(num_shards, models_dir=config.MODELS_DIR):
    """The merged embeddings: the shards."""
    upstream = {f"shard {shard}": published_version(
        embeddings_dir(shard, num_shards, models_dir), f"model_extract_features SHARD={shard} NUM_SHARDS={num_shards}")
        for shard in range(num_shards)}
    return {"options": {"NUM_SHARDS": num_shards}, "upstream": upstream, "code": code_version(*CODE["embeddings"])}


def index_key(kind=config.INDEX, threshold=config.INDEX_FAISS_THRESHOLD, precision=config.INDEX_PRECISION,
              models_dir=config.MODELS_DIR):
    """The search index: the embeddings and the options."""
    embeddings = published_version(embeddings_dir(models_dir=models_dir), "model_extract_features")
    options = {"INDEX": kind, "INDEX_FAISS_THRESHOLD": threshold, "INDEX_PRECISION": precision}
    return {"options": options, "upstream": {"embeddings": embeddings},
            "code": code_version(*CODE["index"])}


def index_dir(models_dir=config.MODELS_DIR):
    """The folder of the search index."""
    return Path(models_dir) / config.INDEX_DIR.name


def evaluate_search_key(models_dir=config.MODELS_DIR):
    """The search evaluation: the index (and through it the embeddings)."""
    return {"upstream": {"index": published_version(index_dir(models_dir), "index")},
            "code": code_version(*CODE["search evaluation"])}


def search_metrics_dir(catalog, reports_dir=config.REPORTS_DIR):
    """Where the search evaluation of a catalog is published: ``reports/<catalog>/search``."""
    return Path(reports_dir) / catalog / "search"


def audit_key(folds=config.AUDIT_FOLDS, hash_distance=config.AUDIT_HASH_DISTANCE,
              pixel_difference=config.AUDIT_PIXEL_DIFFERENCE, seed=config.SEED, image_features=None,
              processed_dir=config.PROCESSED_DIR):
    """The audit: the data, the cached photo features it reads (a folder name, or ``None``), the options."""
    upstream = {"data": published_version(config.splits_dir(processed_dir), "data")}
    if image_features:
        folder = Path(processed_dir) / "backbone" / image_features
        upstream["image features"] = published_version(folder, "model_train BACKBONE=<a pretrained one>")
    return {"options": {"AUDIT_FOLDS": folds, "AUDIT_HASH_DISTANCE": hash_distance,
                        "AUDIT_PIXEL_DIFFERENCE": pixel_difference, "SEED": seed},
            "upstream": upstream, "code": code_version(*CODE["audit"])}


def audit_dir(catalog, reports_dir=config.REPORTS_DIR):
    """Where the audit of a catalog is published: ``reports/<catalog>/audit``."""
    return Path(reports_dir) / catalog / "audit"


def figures_dir(catalog, reports_dir=config.REPORTS_DIR):
    """Where the notebooks and the demo draw a catalog's figures: ``reports/<catalog>/figures``."""
    return Path(reports_dir) / catalog / "figures"
