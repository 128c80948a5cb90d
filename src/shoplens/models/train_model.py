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
import time
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from shoplens import ShoplensError, config
from shoplens.data.make_dataset import load_summary
from shoplens.features.build_features import load_features
from shoplens.models.build_model import build_model
from shoplens.models.datasets import tf_dataset
from shoplens.models.distribute import Distribution, adapt_fit_to_strategy
from shoplens.models.inputs import balanced_weights, check_modes, encode_targets, heads, split_inputs
from shoplens.models.trained import METADATA_FILE, MODEL_FILE, model_name
from shoplens.outputs import publish
from shoplens.pipeline import model_dir, resolve_learning_rate, train_key, weights_kind
from shoplens.stages import version_of


def train_model(
    classmode=config.CLASSMODE,
    modelmode=config.MODELMODE,
    backbone=config.BACKBONE,
    weights=config.WEIGHTS,
    finetune=config.FINETUNE,
    text_encoder=config.TEXT_ENCODER,
    epochs=config.EPOCHS,
    batch_size=config.BATCH_SIZE,
    learning_rate=config.LEARNING_RATE,
    patience=config.PATIENCE,
    class_weights=config.CLASS_WEIGHTS,
    precision=config.PRECISION,
    seed=config.SEED,
    strategy=config.STRATEGY,
    processed_dir=config.PROCESSED_DIR,
    features_dir=config.FEATURES_DIR,
    models_dir=config.MODELS_DIR,
    logs_dir=config.LOGS_DIR,
    verbose=None,
):
    """Train one classifier, keep its best epoch by validation loss, save it; return its metadata.

    ``batch_size`` and ``learning_rate`` are per replica of the ``strategy``. Under
    ``multiworker`` every worker calls this; only the chief writes the model, its
    JSON and the logs, and a restarted worker resumes from its last epoch's backup.
    """
    if epochs < 1 or batch_size < 1:
        raise ShoplensError("EPOCHS and BATCH_SIZE must be at least 1")
    learning_rate = resolve_learning_rate(learning_rate, modelmode)
    key = train_key(classmode, modelmode, backbone, weights, finetune, text_encoder, epochs, batch_size,
                    learning_rate, patience, class_weights, precision, seed, strategy, features_dir)
    data = load_summary(processed_dir)
    features = load_features(features_dir, data["data_version"])
    check_modes(classmode, modelmode, features)
    # Before anything else touches TensorFlow: collective ops are configured when the runtime starts.
    distribution = Distribution(strategy)
    replicas = distribution.strategy.num_replicas_in_sync
    # Linear scaling rule: replicas x the batch means replicas x fewer steps per epoch, so each step moves
    # replicas x as far to keep the progress per epoch (Goyal et al., 2017).
    global_batch, global_learning_rate = batch_size * replicas, learning_rate * replicas
    keras.utils.set_random_seed(seed)
    policy = compute_policy(precision)
    keras.mixed_precision.set_global_policy(policy)
    labels = features["labels"]
    outputs = heads(classmode, labels)
    image_size = features["image_size"] if modelmode != "text" else None
    vocabulary = features["vocabulary"] if modelmode != "image" else None

    train_table, train_x = split_inputs("train", modelmode, features_dir, processed_dir, image_size)
    train_y = encode_targets(train_table, classmode, labels)
    leaf = encode_targets(train_table, "multiclass", labels)["category"]
    weights_per_item = balanced_weights(leaf) if class_weights else None
    validate_table, validate_x = split_inputs("validate", modelmode, features_dir, processed_dir, image_size)
    validate_y = encode_targets(validate_table, classmode, labels)
    # A validation item whose class never occurs in training cannot be scored by the loss.
    seen = np.all([y >= 0 for y in validate_y.values()], axis=0)
    if not seen.all():
        validate_x = {k: v[seen] for k, v in validate_x.items()}
        validate_y = {k: v[seen] for k, v in validate_y.items()}

    with distribution.strategy.scope():
        model = build_model(outputs, image_size=image_size, vocabulary=vocabulary,
                            title_length=features.get("title_length") or config.TITLE_LENGTH, backbone=backbone,
                            weights=weights, finetune=finetune, text_encoder=text_encoder)
        model.compile(
            optimizer=keras.optimizers.Adam(
                cosine_schedule(global_learning_rate, epochs, len(train_table), global_batch)),
            loss={name: "sparse_categorical_crossentropy" for name in outputs},
            metrics={name: ["accuracy"] for name in outputs},
        )

    name = model_name(classmode, modelmode)
    models_dir = Path(models_dir)
    # A worker other than the chief must still save whatever the chief saves (saving can read variables
    # through collective ops all workers join), so it writes into a scratch folder deleted at the end.
    scratch = distribution.scratch_dir(models_dir, name)
    out_dir = models_dir if distribution.chief else scratch
    log_dir = (Path(logs_dir) if distribution.chief else scratch / "logs") / f"{name}_{datetime.now():%Y%m%d-%H%M%S}"
    checkpoint = out_dir / "checkpoints" / f"{name}.weights.h5"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    callbacks = [
        # In the first half of the schedule the rate is high and a from-scratch CNN's validation loss jumps
        # about: early stopping judges the second half only. The checkpoint still keeps the best of all epochs.
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, start_from_epoch=epochs // 2),
        keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True, save_weights_only=True),
        keras.callbacks.TensorBoard(log_dir=str(log_dir)),
    ]
    if distribution.workers > 1:
        # A worker lost mid-run stops them all; restarted, each one restores the weights and epoch of its own
        # backup (identical on every worker, as training is synchronous) and training goes on from there.
        # Early stopping and the best-epoch checkpoint start afresh from the restored epoch.
        backup_dir = out_dir / "checkpoints" / f"{name}-backup"
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True))
    train_data = tf_dataset(train_x, train_y, global_batch, shuffle=True, seed=seed, sample_weight=weights_per_item,
                            augment_images=True)
    if strategy != "default":
        adapt_fit_to_strategy(model, train_data, distribution)
    throughput = TrainingThroughput()
    started = time.perf_counter()
    try:
        history = model.fit(
            train_data,
            validation_data=tf_dataset(validate_x, validate_y, global_batch),
            epochs=epochs,
            shuffle=False,  # the dataset reshuffles itself every epoch
            callbacks=[*callbacks, throughput],
            verbose=verbose if verbose is not None else (1 if sys.stdout.isatty() else 2),
        )
    except tf.errors.UnavailableError:  # TensorFlow has logged which worker and why
        if distribution.workers == 1:
            raise
        raise ShoplensError(f"{distribution.task}: lost contact with another worker; start all the workers again "
                            "with the same command to go on from the last epoch backed up") from None
    seconds = time.perf_counter() - started
    if not history.epoch:  # resumed from a backup taken after the last epoch, now deleted
        raise ShoplensError(f"{name}: the interrupted run had trained all {epochs} epochs but not saved the model; "
                            "run again to train it afresh")
    model.load_weights(checkpoint)

    losses = history.history["val_loss"]
    metadata = {
        "name": name,
        "classmode": classmode,
        "modelmode": modelmode,
        "heads": outputs,
        "levels": data["levels"],
        "language": data["options"]["language"],
        "labels": labels,
        # Train items per class: the most-frequent-class baseline, and the prior fused posteriors divide by.
        "label_counts": {"levels": {name: {str(c): int(n) for c, n in train_table[name].value_counts().items()}
                                    for name in labels["levels"]},
                         "paths": {str(c): int(n) for c, n in train_table["category"].value_counts().items()}},
        "vocabulary": vocabulary,
        "image_size": image_size,
        "title_length": features.get("title_length"),
        "options": {"backbone": backbone if image_size else None, "weights": str(weights) if image_size else None,
                    "finetune": bool(finetune), "text_encoder": text_encoder if vocabulary else None,
                    "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                    "patience": patience, "class_weights": bool(class_weights), "precision": policy,
                    "seed": seed, "strategy": strategy},
        "weights_file": weights_file_record(weights) if image_size and backbone != "simple" else None,
        "distribution": {"strategy": strategy, "replicas": replicas, "workers": distribution.workers,
                         "global_batch_size": global_batch, "learning_rate": global_learning_rate,
                         "chief": distribution.chief},
        "data": {key: data[key] for key in ("catalog", "catalog_name", "data_version", "splits", "classes_per_level")},
        "features": key["upstream"],
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        # Epochs count from the first of all, so that a run resumed from a backup says where it went on.
        "first_epoch": history.epoch[0] + 1,
        "best_epoch": history.epoch[int(np.argmin(losses))] + 1,
        "epochs_run": history.epoch[-1] + 1,
        "train_seconds": round(seconds, 1),
        "items_per_second": round(throughput.items_per_second(len(leaf)), 1),
        "log_dir": str(log_dir),
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    if distribution.chief:
        with publish(model_dir(name, models_dir), "model", key, version_of(key)) as staging:
            model.save(staging / MODEL_FILE)
            (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        checkpoint.unlink()
    else:
        model.save(scratch / MODEL_FILE)  # every worker joins the collective reads of saving
        shutil.rmtree(scratch)
    return metadata


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


def cosine_schedule(learning_rate, epochs, items, batch_size):
    """Adam's rate from ``learning_rate`` down to 0 over ``epochs`` epochs of ``items`` items, as a cosine.

    A from-scratch CNN needs many steps at a high rate, then small ones to settle. On fashion-products the
    simple CNN's level-3 accuracy was 0.79 when the rate was cut on each plateau of its noisy validation loss;
    with this schedule it reached 0.84 in 30 epochs and 0.86 in 45.
    """
    steps = epochs * math.ceil(items / batch_size)
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)


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

