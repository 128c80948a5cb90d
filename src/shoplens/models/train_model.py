"""The train_model stage: features -> ``models/<classmode>_<modelmode>/``, published in one step.

The folder holds ``model.keras`` and ``model.json``: everything prediction needs
besides the model itself (label maps, vocabulary, image size, options, the data
version it was trained on) and the training history.

Training runs in one process (``STRATEGY=default``), on all local GPUs
(``mirrored``) or on the machines listed in ``TF_CONFIG`` (``multiworker``), where
only the chief worker writes the model and logs.
"""
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from shoplens import ShoplensError, config, progress
from shoplens.data.make_dataset import load_summary
from shoplens.features.build_features import load_features, load_images
from shoplens.models.backbone_features import backbone_features
from shoplens.models.backbones import is_pretrained, takes_weights
from shoplens.models.build_model import IMAGE_FEATURES, backbone_cut, build_model
from shoplens.models.datasets import tf_dataset
from shoplens.models.distribute import Distribution, adapt_fit_to_strategy
from shoplens.models.inputs import balanced_weights, check_modes, encode_targets, heads, split_inputs
from shoplens.models.localise import ActivationMaps, crop_photos, feature_map_layers, find_products
from shoplens.models.normsoftmax import MarginCrossentropy
from shoplens.models.trained import METADATA_FILE, MODEL_FILE, model_name
from shoplens.outputs import publish
from shoplens.pipeline import model_dir, resolve_learning_rate, train_key, weights_kind
from shoplens.progress import is_terminal, progress_line
from shoplens.stages import version_of


def train_model(
    classmode=config.CLASSMODE,
    modelmode=config.MODELMODE,
    backbone=config.BACKBONE,
    weights=config.WEIGHTS,
    finetune=config.FINETUNE,
    text_encoder=config.TEXT_ENCODER,
    loss=config.LOSS,
    temperature=config.TEMPERATURE,
    margin=config.MARGIN,
    epochs=config.EPOCHS,
    batch_size=config.BATCH_SIZE,
    learning_rate=config.LEARNING_RATE,
    patience=config.PATIENCE,
    class_weights=config.CLASS_WEIGHTS,
    precision=config.PRECISION,
    seed=config.SEED,
    strategy=config.STRATEGY,
    finetune_blocks=config.FINETUNE_BLOCKS,
    finetune_epochs=config.FINETUNE_EPOCHS,
    finetune_learning_rate=config.FINETUNE_LEARNING_RATE,
    vit_patch_size=config.VIT_PATCH_SIZE,
    vit_layers=config.VIT_LAYERS,
    crop=config.CROP,
    processed_dir=config.PROCESSED_DIR,
    features_dir=config.FEATURES_DIR,
    models_dir=config.MODELS_DIR,
    logs_dir=config.LOGS_DIR,
    verbose=None,
):
    """Train one classifier, keep its best epoch by validation loss, save it; return its metadata.

    A backbone trained from scratch (the small CNN, or a ViT of ``vit_layers`` layers on patches of
    ``vit_patch_size`` pixels) trains end to end on the images. A pretrained backbone trains in
    stages on its cached activations (:mod:`shoplens.models.backbone_features`):
    first the heads on the frozen backbone's pooled features (``epochs`` at
    ``learning_rate``); then, with ``finetune``, the top ``finetune_blocks`` blocks
    with the heads (``finetune_epochs`` at the lower ``finetune_learning_rate``),
    batch norm in inference mode throughout (the recipe of Keras's transfer-learning
    guide). The saved model reads raw images either way.

    With ``crop="auto"`` an image model then finds the product in every train and
    validate photo (:func:`shoplens.models.localise.find_products`) and repeats its last
    stage on the photos and their crops (each item shows one or the other, drawn each
    epoch), validated on the crops: what it will classify and embed.

    ``batch_size`` and ``learning_rate`` are per replica of the ``strategy``. Under
    ``multiworker`` every worker calls this; only the chief writes the model, its
    JSON and the logs, and a restarted worker resumes from its last epoch's backup.

    ``verbose`` is Keras's (0 for silence); by default a progress bar on a terminal,
    and elsewhere (a log file) the plain lines of :class:`ProgressLog`.
    """
    if epochs < 1 or batch_size < 1 or finetune_epochs < 1:
        raise ShoplensError("EPOCHS, FINETUNE_EPOCHS and BATCH_SIZE must be at least 1")
    if crop not in config.CROPS:
        raise ShoplensError(f"CROP must be one of {', '.join(config.CROPS)}, got '{crop}'")
    crop = crop if modelmode == "image" else "none"
    learning_rate = resolve_learning_rate(learning_rate, modelmode)
    finetune_learning_rate = resolve_learning_rate(finetune_learning_rate, modelmode)
    key = train_key(classmode, modelmode, backbone, weights, finetune, text_encoder, epochs, batch_size,
                    learning_rate, patience, class_weights, precision, seed, strategy, finetune_blocks,
                    finetune_epochs, finetune_learning_rate, features_dir, loss, temperature, margin,
                    vit_patch_size=vit_patch_size, vit_layers=vit_layers, crop=crop)
    data = load_summary(processed_dir)
    features = load_features(features_dir, data["data_version"])
    check_modes(classmode, modelmode, features)
    pretrained = modelmode != "text" and is_pretrained(backbone)  # else trained from scratch, on the images
    weighted = modelmode != "text" and takes_weights(backbone)
    vit = modelmode != "text" and backbone == "vit"
    finetune = bool(finetune) and pretrained
    image_size = None if modelmode == "text" else pretrained_image_size(features) if pretrained else \
        features["image_size"]
    # Before anything else touches TensorFlow: collective ops are configured when the runtime starts.
    distribution = Distribution(strategy)
    replicas = distribution.strategy.num_replicas_in_sync
    # Linear scaling rule: replicas x the batch means replicas x fewer steps per epoch, so each step moves
    # replicas x as far to keep the progress per epoch (Goyal et al., 2017).
    global_batch = batch_size * replicas
    keras.utils.set_random_seed(seed)
    policy = compute_policy(precision)
    keras.mixed_precision.set_global_policy(policy)
    labels = features["labels"]
    outputs = heads(classmode, labels)
    normsoftmax = loss == "normsoftmax" and image_size is not None
    head_loss = MarginCrossentropy(margin, temperature) if normsoftmax and margin else "sparse_categorical_crossentropy"
    vocabulary = features["vocabulary"] if modelmode != "image" else None

    tables, x, y = {}, {}, {}
    for split in ("train", "validate"):
        tables[split], x[split] = split_inputs(split, modelmode, features_dir, processed_dir, image_size)
        y[split] = encode_targets(tables[split], classmode, labels)
    leaf = encode_targets(tables["train"], "multiclass", labels)["category"]
    weights_per_item = balanced_weights(leaf) if class_weights else None
    # A validation item whose class never occurs in training cannot be scored by the loss.
    seen = np.all([t >= 0 for t in y["validate"].values()], axis=0)

    with distribution.strategy.scope():
        model = build_model(outputs, image_size=image_size, vocabulary=vocabulary,
                            title_length=features.get("title_length") or config.TITLE_LENGTH, backbone=backbone,
                            weights=weights, finetune_blocks=finetune_blocks if finetune else 0,
                            text_encoder=text_encoder, loss=loss, temperature=temperature,
                            vit_patch_size=vit_patch_size, vit_layers=vit_layers)
    if crop == "auto":
        feature_map_layers(model)  # a model that cannot find a product (no convolutional feature map) is refused now
    # Training a stage from part-way up the model re-calls its layers, which Keras's saving then trips over:
    # the model saved is rebuilt from this description, with the trained weights.
    architecture = model.get_config()
    # Each stage: (the layer it starts from, or None for the whole model; inputs per split; epochs; rate).
    stages, made = [(None, x, epochs, learning_rate)], None
    if pretrained:
        cut = backbone_cut(model, backbone, finetune_blocks if finetune else 0)
        images = {split: x[split]["image"] for split in x}
        if cut == IMAGE_FEATURES:  # the frozen backbone's features of every product: the audit reads them too
            images["test"] = load_images("test", features_dir, image_size)
        cached, made = backbone_features(model, cut, backbone, weights, images,
                                         features["versions"][f"images_{image_size}"], processed_dir)
        if finetune:
            stages = [(IMAGE_FEATURES, _replace_images(x, _pooled(model, cut, cached)), epochs, learning_rate),
                      (cut, _replace_images(x, cached), finetune_epochs, finetune_learning_rate)]
        else:
            stages = [(cut, _replace_images(x, cached), epochs, learning_rate)]

    name = model_name(classmode, modelmode)
    models_dir = Path(models_dir)
    # A worker other than the chief must still save whatever the chief saves (saving can read variables
    # through collective ops all workers join), so it writes into a scratch folder deleted at the end.
    scratch = distribution.scratch_dir(models_dir, name)
    out_dir = models_dir if distribution.chief else scratch
    log_dir = (Path(logs_dir) if distribution.chief else scratch / "logs") / f"{name}_{datetime.now():%Y%m%d-%H%M%S}"
    histories, throughput, started = [], TrainingThroughput(), time.perf_counter()
    # Keras's progress bar redraws itself with carriage returns: a log file gets plain lines instead.
    log_lines = verbose is None and not is_terminal(sys.stdout)
    keras_verbose = 0 if log_lines else 1 if verbose is None else verbose
    count = len(stages) + (crop == "auto")

    def train_stage(number, start, inputs, stage_epochs, rate):
        trained = model if start is None else _from_layer(model, start, list(inputs["train"]), outputs)
        with distribution.strategy.scope():
            trained.compile(
                optimizer=keras.optimizers.Adam(cosine_schedule(rate * replicas, stage_epochs, len(tables["train"]),
                                                                global_batch, warmup_epochs=int(number > 1))),
                loss={name: head_loss for name in outputs},
                metrics={name: ["accuracy"] for name in outputs},
            )
        stage = f"{name}-stage{number}" if count > 1 else name
        train_data = tf_dataset(inputs["train"], y["train"], global_batch, shuffle=True, seed=seed,
                                sample_weight=weights_per_item, augment_images=start is None,
                                order=list(inputs["train"]) if start else None)
        validate_x = {k: v[seen] for k, v in inputs["validate"].items()}
        validate_data = tf_dataset(validate_x, {k: v[seen] for k, v in y["validate"].items()}, global_batch,
                                   order=list(validate_x) if start else None)
        lines = ProgressLog(len(tables["train"]), global_batch, list(outputs), f"stage {number} " if count > 1 else "")
        histories.append(_fit(trained, train_data, validate_data, stage_epochs, patience, out_dir, stage,
                              log_dir / f"stage{number}" if count > 1 else log_dir, distribution, strategy,
                              [throughput, lines] if log_lines else [throughput], keras_verbose))

    for number, stage in enumerate(stages, start=1):
        train_stage(number, *stage)
    products = None
    if crop == "auto":
        activation_maps, progress = ActivationMaps(model), bool(keras_verbose or log_lines)  # of the trained model
        found = {split: find_products(x[split]["image"], activation_maps, progress=progress)
                 for split in ("train", "validate")}
        products = {"photos": sum(len(boxes) for boxes, _ in found.values()),
                    "plain": sum(plain for _, plain in found.values())}
        start, inputs, stage_epochs, rate = stages[-1]
        (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir / "checkpoints") as folder:
            crops = {split: crop_photos([config.project_path(p) for p in tables[split]["image_path"]], boxes,
                                        image_size, np.lib.format.open_memmap(
                                            Path(folder) / f"{split}.npy", mode="w+", dtype=np.uint8,
                                            shape=x[split]["image"].shape), progress=progress)
                     for split, (boxes, _) in found.items()}
            if pretrained:
                digest = hashlib.sha1(b"".join(boxes.tobytes() for boxes, _ in found.values())).hexdigest()[:16]
                crops, _ = backbone_features(model, cut, backbone, weights, crops,
                                             f"{features['versions'][f'images_{image_size}']}-{digest}", processed_dir,
                                             crops=True)
            train_stage(count, start, _with_crops(inputs, crops), stage_epochs, rate)
    seconds = time.perf_counter() - started

    history = {k: [float(v) for h in histories for v in h.history[k]] for k in histories[-1].history}
    epochs_run = [h.epoch[-1] + 1 for h in histories]
    losses = histories[-1].history["val_loss"]
    metadata = {
        "name": name,
        "classmode": classmode,
        "modelmode": modelmode,
        "heads": outputs,
        "levels": data["levels"],
        "language": data["options"]["language"],
        "labels": labels,
        # Train items per class: the most-frequent-class baseline, and the prior fused posteriors divide by.
        "label_counts": {"levels": {level: {str(c): int(n) for c, n in tables["train"][level].value_counts().items()}
                                    for level in labels["levels"]},
                         "paths": {str(c): int(n) for c, n in tables["train"]["category"].value_counts().items()}},
        "vocabulary": vocabulary,
        "image_size": image_size,
        "title_length": features.get("title_length"),
        "options": {"backbone": backbone if image_size else None, "weights": str(weights) if weighted else None,
                    "finetune": finetune, "finetune_blocks": finetune_blocks if finetune else None,
                    "finetune_epochs": finetune_epochs if finetune else None,
                    "finetune_learning_rate": finetune_learning_rate if finetune else None,
                    **({"vit_patch_size": vit_patch_size, "vit_layers": vit_layers,
                        "vit_hidden_dim": config.VIT_HIDDEN_DIM, "vit_heads": config.VIT_HEADS,
                        "vit_mlp_dim": config.VIT_MLP_DIM} if vit else {}),
                    "text_encoder": text_encoder if vocabulary else None,
                    **({"loss": loss, "temperature": temperature if normsoftmax else None,
                        "margin": margin if normsoftmax else None} if image_size else {}),
                    **({"crop": crop} if modelmode == "image" else {}),
                    "epochs": epochs, "batch_size": batch_size,
                    "learning_rate": learning_rate, "patience": patience, "class_weights": bool(class_weights),
                    "precision": policy, "seed": seed, "strategy": strategy},
        "weights_file": weights_file_record(weights) if weighted else None,
        "distribution": {"strategy": strategy, "replicas": replicas, "workers": distribution.workers,
                         "global_batch_size": global_batch, "learning_rate": learning_rate * replicas,
                         "chief": distribution.chief},
        "data": {k: data[k] for k in ("catalog", "catalog_name", "data_version", "splits", "classes_per_level")},
        "features": key["upstream"],
        "history": history,
        # Epochs count from the first of all, so that a run resumed from a backup says where it went on.
        "first_epoch": histories[0].epoch[0] + 1,
        "best_epoch": histories[-1].epoch[int(np.argmin(losses))] + 1,
        "epochs_run": sum(epochs_run),
        "stages": (["heads", "fine-tuning"][:len(stages)] if pretrained
                   else ["photos" if modelmode == "image" else "items"]) + (["crops"] if products else []),
        "stage_epochs": epochs_run,
        # CROP=auto: the train and validate photos the last stage also learnt from the crops of, and how many of
        # them had a plain background (boxed by contrast; the others by the activation maps).
        "products_found": products,
        "train_seconds": round(seconds, 1),
        "items_per_second": round(throughput.items_per_second(len(leaf)), 1),
        "backbone_features_seconds": made["seconds"] if made else None,  # None: the cache was up to date
        "backbone_images_per_second": made["images_per_second"] if made else None,
        "log_dir": str(log_dir),
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    with distribution.strategy.scope():
        saved = keras.Model.from_config(architecture)
        saved.set_weights(model.get_weights())
    if distribution.chief:
        with publish(model_dir(name, models_dir), "model", key, version_of(key)) as staging:
            saved.save(staging / MODEL_FILE)
            (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    else:
        saved.save(scratch / MODEL_FILE)  # every worker joins the collective reads of saving
        shutil.rmtree(scratch)
    return metadata


def pretrained_image_size(features):
    """The side of the images a pretrained backbone reads, from the features made for it."""
    size = features.get("pretrained_image_size")
    if not size:
        raise ShoplensError("the features hold no images for a pretrained backbone; run `make features` with "
                            "the BACKBONE to train (it makes them at PRETRAINED_IMAGE_SIZE)")
    return size


def _fit(model, train_data, validate_data, epochs, patience, out_dir, stage, log_dir, distribution, strategy,
         watchers, verbose):
    """One ``fit`` that keeps its best epoch by validation loss, with the ``watchers`` callbacks too; its history."""
    checkpoint = out_dir / "checkpoints" / f"{stage}.weights.h5"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    callbacks = [
        # In the first half of the schedule the rate is high and a from-scratch CNN's validation loss jumps
        # about: early stopping judges the second half only. The checkpoint still keeps the best of all epochs.
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, start_from_epoch=epochs // 2),
        keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True, save_weights_only=True),
        keras.callbacks.TensorBoard(log_dir=str(log_dir)),
        *watchers,
    ]
    if distribution.workers > 1:
        # A worker lost mid-run stops them all; restarted, each one restores the weights and epoch of its own
        # backup (identical on every worker, as training is synchronous) and training goes on from there.
        # Early stopping and the best-epoch checkpoint start afresh from the restored epoch.
        callbacks.insert(0, keras.callbacks.BackupAndRestore(out_dir / "checkpoints" / f"{stage}-backup",
                                                             double_checkpoint=True))
    if strategy != "default":
        adapt_fit_to_strategy(model, train_data, distribution)
    try:
        history = model.fit(train_data, validation_data=validate_data, epochs=epochs,
                            shuffle=False,  # the dataset reshuffles itself every epoch
                            callbacks=callbacks, verbose=verbose)
    except tf.errors.UnavailableError:  # TensorFlow has logged which worker and why
        if distribution.workers == 1:
            raise
        raise ShoplensError(f"{distribution.task}: lost contact with another worker; start all the workers again "
                            "with the same command to go on from the last epoch backed up") from None
    if not history.epoch:  # resumed from a backup taken after the last epoch, now deleted
        raise ShoplensError(f"{stage}: the interrupted run had trained all {epochs} epochs but not saved the model; "
                            "run again to train it afresh")
    model.load_weights(checkpoint)
    checkpoint.unlink()
    return history


def _from_layer(model, start, names, heads):
    """The part of ``model`` from the output of layer ``start`` (and its title input) to its ``heads``.

    Its inputs come in the order of ``names``: ``image_features`` (that output) and ``title``.
    """
    tensors = {"image_features": model.get_layer(start).output}
    if "title" in names:
        tensors["title"] = model.get_layer("title").output
    return keras.Model([tensors[n] for n in names], {head: model.get_layer(head).output for head in heads})


def _with_crops(inputs, crops):
    """A stage's inputs with each train item's crop as more views of it, validated on the crops alone."""
    feature = "image_features" if "image_features" in inputs["train"] else "image"
    return {"train": {**inputs["train"], feature: [inputs["train"][feature], crops["train"]]},
            "validate": {**inputs["validate"], feature: crops["validate"]}}


def _replace_images(x, activations):
    """The model inputs of each split with the images replaced by what the backbone made of them."""
    return {split: {"image_features": activations[split], **{k: v for k, v in inputs.items() if k != "image"}}
            for split, inputs in x.items()}


def _pooled(model, cut, cached):
    """The frozen backbone's pooled features of the cached activations, per split (train keeps its views)."""
    top = keras.Model(model.get_layer(cut).output, model.get_layer(IMAGE_FEATURES).output)
    pooled = {}
    for split, array in cached.items():
        rows = array.reshape(-1, *array.shape[-3:])  # a view of the memory-mapped file, read a chunk at a time
        out = np.concatenate([np.asarray(top.predict_on_batch(np.asarray(rows[i:i + 256], np.float32)), np.float32)
                              for i in range(0, len(rows), 256)])
        pooled[split] = out.reshape(*array.shape[:-3], out.shape[-1])
    return pooled


def weights_file_record(weights):
    """The name and sha256 of a weights file a backbone loaded, for the model's JSON; ``None`` for others."""
    if weights_kind(weights) != "file":
        return None
    digest = hashlib.sha256()
    with open(weights, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"name": Path(weights).name, "sha256": digest.hexdigest()}


def compute_policy(precision="auto"):
    """The Keras dtype policy for ``precision``: auto, float32, mixed_bfloat16 or mixed_float16.

    Mixed precision computes in 16 bits and keeps weights in float32: on a GPU
    (float16) or a CPU with native bfloat16 (AMX or AVX512-BF16) it trains well over
    1.5x faster; elsewhere 16-bit arithmetic is emulated, so auto stays in float32.
    """
    choices = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
    if precision not in choices:
        raise ShoplensError(f"unknown PRECISION '{precision}' (choose from {', '.join(choices)})")
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "mixed_bfloat16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "float32"


def cosine_schedule(learning_rate, epochs, items, batch_size, warmup_epochs=0):
    """Adam's rate from ``learning_rate`` down to 0 over ``epochs`` epochs of ``items`` items, as a cosine;
    after ``warmup_epochs`` of a linear rise from 0, if any.

    A from-scratch CNN needs many steps at a high rate, then small ones to settle. On fashion-products the
    simple CNN's level-3 accuracy was 0.79 when the rate was cut on each plateau of its noisy validation loss;
    with this schedule it reached 0.84 in 30 epochs and 0.86 in 45. Fine-tuning warms up instead: Adam's first
    steps move every weight by about the full rate, whatever its gradient, which knocked a pretrained
    backbone's top blocks off their weights (validation accuracy fell by 2 points in the first epoch).
    """
    per_epoch = math.ceil(items / batch_size)
    warmup = warmup_epochs * per_epoch
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * per_epoch)
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=max(1, epochs * per_epoch - warmup),
                                                  warmup_target=learning_rate, warmup_steps=warmup)


class TrainingThroughput(keras.callbacks.Callback):
    """Items per second of the training passes alone, validation excluded."""

    def __init__(self):
        super().__init__()
        self.seconds, self.epochs, self._start = 0.0, 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self.epochs += 1
            self._start = None

    def items_per_second(self, n_items):
        return n_items * self.epochs / self.seconds if self.seconds else 0.0


class ProgressLog(keras.callbacks.Callback):
    """Training's progress as plain lines, for a log file rather than a terminal.

    Within an epoch, a line every :data:`shoplens.progress.LOG_INTERVAL` seconds
    (``epoch 3/16: 640/1,424 items, 12 s``); at its end, one with the epoch's losses and
    validation accuracy of each of the ``heads``. ``batch_size`` is the global batch, as one step reads it.
    """

    def __init__(self, items, batch_size, heads=(), prefix="", interval=None, file=None):
        super().__init__()
        self.items, self.batch_size, self.heads, self.prefix, self.file = items, batch_size, heads, prefix, file
        self.interval = interval
        self._epoch, self._started, self._last = 0, 0.0, 0.0

    def _print(self, line):
        print(line, file=self.file or sys.stdout, flush=True)

    def _name(self, epoch):
        return f"{self.prefix}epoch {epoch + 1}/{self.params['epochs']}"

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._started = epoch, time.monotonic()
        self._last = self._started

    def on_train_batch_end(self, batch, logs=None):
        now, done = time.monotonic(), min((batch + 1) * self.batch_size, self.items)
        interval = progress.LOG_INTERVAL if self.interval is None else self.interval
        if done < self.items and now - self._last >= interval:  # after the last step, the epoch's line follows
            self._last = now
            self._print(progress_line(self._name(self._epoch), done, self.items, "item", now - self._started))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        losses = ", ".join(f"{name} {logs[name]:.3f}" for name in ("loss", "val_loss") if name in logs)
        accuracy = ", ".join(f"{head} {logs[f'val_{head}_accuracy']:.2f}" for head in self.heads
                             if f"val_{head}_accuracy" in logs)
        if not accuracy and "val_accuracy" in logs:  # a model of one head
            accuracy = f"{logs['val_accuracy']:.2f}"
        self._print(f"{self._name(epoch)}: {self.items:,} items, {time.monotonic() - self._started:.0f} s; {losses}"
                    + (f"; val accuracy {accuracy}" if accuracy else ""))
