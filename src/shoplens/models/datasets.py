"""The ``tf.data`` pipeline that streams model inputs and targets, and the augmentation inside it."""
import numpy as np
import tensorflow as tf

from shoplens import config


def tf_dataset(inputs, targets=None, batch_size=config.BATCH_SIZE, shuffle=False, seed=config.SEED,
               sample_weight=None, augment_images=False, order=None):
    """Batches of ``(inputs, targets[, sample_weight])``, streamed in order or shuffled each epoch.

    Arrays of more than one dimension (images, a backbone's activations) are gathered a
    batch at a time from their memory-mapped files, so any catalog size streams in
    constant memory; everything else is small and held as tensors. An array with a
    leading axis of views (``(views, n, ...)``), or a list of arrays (each ``(n, ...)``
    or ``(views, n, ...)``: the photos and their crops), gives each item one of all its
    views, drawn afresh every epoch when shuffling (training), and the first otherwise.
    With ``augment_images`` (training), each batch of images is augmented by :func:`augment`.
    ``order`` gives the inputs as a tuple in that order, for models whose inputs are not named.
    Under a ``tf.distribute`` strategy ``batch_size`` is the global batch, split among the replicas.
    """
    n = len(next(iter(targets.values()))) if targets else len(inputs.get("title", next(iter(inputs.values()))))
    streamed = {name: _views(value, n) for name, value in inputs.items()
                if isinstance(value, list) or isinstance(value, np.ndarray) and value.ndim > 1}
    tensors = {name: tf.constant(value) for name, value in inputs.items() if name not in streamed}
    if targets is not None:
        tensors.update({f"target/{name}": tf.constant(value) for name, value in targets.items()})
    if sample_weight is not None:
        tensors["sample_weight"] = tf.constant(sample_weight, dtype=tf.float32)

    def rows(sources):
        counts = [len(source) for source in sources]

        def take(index):
            if not shuffle or sum(counts) == 1:
                return np.asarray(sources[0][0, index])
            view = np.random.randint(sum(counts), size=len(index))
            out = np.empty((len(index), *sources[0].shape[2:]), sources[0].dtype)
            for source, first in zip(sources, np.cumsum([0, *counts[:-1]])):
                chosen = (view >= first) & (view < first + len(source))
                out[chosen] = source[view[chosen] - first, index[chosen]]
            return out
        return take

    def gather(index):
        batch = {name: tf.gather(value, index) for name, value in tensors.items()}
        for name, sources in streamed.items():
            array = sources[0]
            dtype = tf.uint8 if array.dtype == np.uint8 else tf.float32
            pixels = tf.numpy_function(rows(sources), [index], tf.as_dtype(array.dtype))
            batch[name] = tf.cast(tf.ensure_shape(pixels, (None, *array.shape[2:])), dtype)
        if augment_images and "image" in batch:
            batch["image"] = augment(batch["image"])
        x = {name: batch[name] for name in inputs}
        if order is not None:
            x = tuple(x[name] for name in order)
        if targets is None:
            return x
        y = {name: batch[f"target/{name}"] for name in targets}
        return (x, y, batch["sample_weight"]) if sample_weight is not None else (x, y)

    dataset = tf.data.Dataset.range(n)
    if shuffle:
        dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    # Under MultiWorkerMirroredStrategy each worker runs this pipeline and keeps its share of every global
    # batch. The source is a range of row numbers, not files, so the default file-based sharding cannot split
    # it; DATA sharding can, because every worker draws the same seeded order. It needs no bookkeeping: all
    # workers take the same number of steps and tf.distribute splits a last partial batch. The price, each
    # worker gathering the whole batch, is small beside a training step worth several machines. Without a
    # multi-worker strategy the option is never read.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _views(value, n):
    """An input of arrays of ``n`` items as a list of arrays of views, ``(views, n, ...)``."""
    return [array if array.ndim > 2 and array.shape[0] != n and array.shape[1] == n else array[None]
            for array in (value if isinstance(value, list) else [value])]


def augment(images, max_zoom=0.15, max_brightness=20.0, max_contrast=0.1):
    """Light augmentation of a uint8 image batch: flip, random crop (zoom and shift), brightness, contrast.

    Batched tensor ops only, cheap enough to run in the input pipeline. Hue is left
    alone: colour is a product attribute.
    """
    shape = tf.shape(images)
    n, size = shape[0], images.shape[1:3]
    x = tf.cast(images, tf.float32)
    flip = tf.random.uniform([n, 1, 1, 1]) < 0.5
    x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    side = tf.random.uniform([n, 1], 1.0 - max_zoom, 1.0)
    top, left = tf.random.uniform([n, 1]) * (1.0 - side), tf.random.uniform([n, 1]) * (1.0 - side)
    boxes = tf.concat([top, left, top + side, left + side], axis=1)
    x = tf.image.crop_and_resize(x, boxes, tf.range(n), size)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * tf.random.uniform([n, 1, 1, 1], 1 - max_contrast, 1 + max_contrast) + mean
    x = x + tf.random.uniform([n, 1, 1, 1], -max_brightness, max_brightness)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
