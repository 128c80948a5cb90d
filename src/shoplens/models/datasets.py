"""The ``tf.data`` pipeline that streams model inputs and targets, and the augmentation inside it."""
import tensorflow as tf

from shoplens import config


def tf_dataset(inputs, targets=None, batch_size=config.BATCH_SIZE, shuffle=False, seed=config.SEED,
               sample_weight=None, augment_images=False):
    """Batches of ``(inputs, targets[, sample_weight])``, streamed in order or shuffled each epoch.

    Images are gathered a batch at a time from the memory-mapped array, so any catalog
    size streams in constant memory; everything else is small and held as tensors.
    With ``augment_images`` (training), each batch of images is augmented by :func:`augment`.
    Under a ``tf.distribute`` strategy ``batch_size`` is the global batch, split among the replicas.
    """
    n = len(next(iter(inputs.values())))
    images = inputs.get("image")
    tensors = {name: tf.constant(value) for name, value in inputs.items() if name != "image"}
    if targets is not None:
        tensors.update({f"target/{name}": tf.constant(value) for name, value in targets.items()})
    if sample_weight is not None:
        tensors["sample_weight"] = tf.constant(sample_weight, dtype=tf.float32)

    def gather(index):
        batch = {name: tf.gather(value, index) for name, value in tensors.items()}
        if images is not None:
            pixels = tf.numpy_function(lambda i: images[i], [index], tf.uint8)
            batch["image"] = tf.ensure_shape(pixels, (None, *images.shape[1:]))
            if augment_images:
                batch["image"] = augment(batch["image"])
        x = {name: batch[name] for name in inputs}
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
