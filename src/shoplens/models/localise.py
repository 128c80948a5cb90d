"""Object-centred crops: find the product in a photo and crop to it before it is classified or embedded.

No detector is trained and none is downloaded: the box comes from what is at hand (weakly supervised
localisation).

* On a plain background (a studio shot: nearly all of the photo's border one colour), the pixels that differ
  from the border's colour are the product (:func:`contrast_boxes`).
* On a busy one, the image classifier's own class activation map says where the evidence for its predicted
  classes lies: Layer-CAM (Jiang et al., 2021) of its last convolutional layers, of the photo and of its mirror
  image (:class:`ActivationMaps`).

A mask or a map becomes a box the same way (:func:`mask_boxes`): its largest connected region, padded a
little. :func:`crop_boxes` picks the way per photo (:func:`find_products`, for a whole split), on the photo as the
model reads it; :func:`crop_photo` cuts the square around the box out of the photo itself, decoded at a higher
resolution than the model's input, and resizes it to that input. A box is ``(x0, y0, x1, y1)`` in pixels of the
image it was found on, ``x1`` and ``y1`` one past the last, as PIL crops.

A model trained with ``CROP=auto`` learns from the crops too (:mod:`shoplens.models.train_model`), and
classifies and embeds the crop of every photo it reads.
"""
import numpy as np
from PIL import Image
from scipy import ndimage

from shoplens import ShoplensError, config
from shoplens.data.images import load_image, open_image

# Chosen on the validate and train items of the cluttered demo catalog (make benchmark-crops).
# Each side of a box by contrast grows by this share of the box's width or height. An activation map's region
# is not padded: it reaches past the product already.
PAD = 0.04
# Share of a map's scale (its layers' maxima) from which a pixel counts as the product's. For models trained with
# crops, on the cluttered train and validate photos of the seed-42 catalog (three training seeds), with the two
# coarser layers weighing alike: IoU >= 0.5 for 55 / 66 / 70 / 64 / 46 % of them at 0.35 / 0.4 / 0.45 / 0.5 /
# 0.55; at 0.45 with the photo read at its size alone, 61 %. A threshold per photo did no better on the same
# photos, whether the one whose region changes least around it, a share of the map's own maximum or mean, or the
# one whose crop the model classifies most surely; nor did reading the map again on a zoomed crop around the first
# box.
CAM_THRESHOLD = 0.45
SCALES = (1, 2)  # the sizes a photo is read at, for its activation map: as it is and enlarged twice
# The weight in an activation map's geometric mean of the maps of the last convolutional feature map and of the last
# layers at twice and four times its resolution. The finer layers place the product's edges, but alone they light up
# on the edges of the clutter around it too. On the same photos, at 0.45: 78.8 / 72.1 / 75.3 % with IoU >= 0.5 by
# training seed, against 73.6 / 64.7 / 71.4 % with the two coarser layers weighing alike; the weights and threshold
# chosen on two seeds gave the third 4.8 points more on average.
LAYER_WEIGHTS = (4, 1, 1)
# A crop is cut from the photo decoded at up to SHARPNESS times the model's input, not from the input itself: a
# product a quarter of the photo's side keeps its detail. On the seed-42 cluttered demo (128 px photos, 64 px input,
# two training seeds) the crops cut at 128 px gave image search precision@5 0.614 and 0.626, at 64 px 0.590 and 0.612.
SHARPNESS = 4
# Summed |RGB difference| from the border's colour from which a pixel counts as the product's: the demo's sensor
# noise and JPEG stay below it, the darker outline of a white product on white does not.
CONTRAST = 40
# A photo has a plain background when at most PLAIN_BORDER of its border's pixels differ from the border's colour
# by more than NOISE (a product may touch the border). On the demo, 99 % of studio shots have at most 2 % such
# pixels, and 99 % of cluttered ones at least 4.6 %.
NOISE = 25
PLAIN_BORDER = 0.04


def _border(images):
    """Each image's border pixels, ``(n, 4 * side, 3)``, as int16 (differences of uint8 go negative)."""
    images = np.asarray(images, dtype=np.int16)
    return np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)


def plain_background(images):
    """Whether each image of a ``(n, height, width, 3)`` batch has a plain background: ``(n,)`` bool."""
    border = _border(images)
    off = np.abs(border - np.median(border, axis=1, keepdims=True)).sum(axis=-1) > NOISE
    return off.mean(axis=1) <= PLAIN_BORDER


def contrast_boxes(images, pad=PAD):
    """Boxes of the pixels that differ from the colour of each image's border.

    Parameters
    ----------
    images : array_like
        ``(n, height, width, 3)`` uint8.
    pad : float
        Each side of a box grows by this share of the box's width or height.

    Returns
    -------
    numpy.ndarray
        ``(n, 4)`` int boxes; the whole image where nothing differs.
    """
    images = np.asarray(images, dtype=np.int16)
    colour = np.median(_border(images), axis=1)
    return mask_boxes(np.abs(images - colour[:, None, None]).sum(axis=-1) > CONTRAST, pad)


def mask_boxes(masks, pad=PAD):
    """The padded box of the largest connected region (8 neighbours) of each mask.

    Parameters
    ----------
    masks : array_like
        ``(n, height, width)`` bool.
    pad : float
        Each side of a box grows by this share of the box's width or height, within the image.

    Returns
    -------
    numpy.ndarray
        ``(n, 4)`` int boxes; the whole image for an empty mask.
    """
    masks = np.asarray(masks, dtype=bool)
    n, height, width = masks.shape
    # One call labels the whole batch: regions connect within an image, never from one image to the next.
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    labels, count = ndimage.label(masks, structure)
    boxes = np.tile(np.array([0, 0, width, height]), (n, 1))
    if count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        regions = ndimage.find_objects(labels)
        image = np.array([region[0].start for region in regions])
        # Sorted by image, then by size: the last region of each image's run is its largest.
        order = np.lexsort((sizes, image))
        for k in order[np.append(image[order][1:] != image[order][:-1], True)]:
            _, rows, cols = regions[k]
            boxes[image[k]] = cols.start, rows.start, cols.stop, rows.stop
    sides = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    grown = boxes + np.round(sides * pad * np.array([-1, -1, 1, 1])).astype(int)
    return np.clip(grown, 0, [width, height, width, height])


class ActivationMaps:
    """Layer-CAM of a trained image classifier: where in each photo the evidence for its predicted classes lies.

    The map of a layer is the sum over its channels of each activation times the positive part of the gradient of
    the predicted classes' logits at it (Layer-CAM, Jiang et al., 2021: unlike Grad-CAM's one weight per channel,
    it stays sharp on layers below the last). Up to three layers are read (:func:`feature_map_layers`): the last
    convolutional feature map, which knows best what the product is, and the last ones at twice and four times its
    resolution, which know better where. Each photo is read as it is and mirrored, at its size and at ``SCALES``
    times it (enlarged, a small product looks as large as the crops a ``CROP=auto`` model learnt from, and the maps
    have finer cells); the maps of every layer and reading, each scaled to a maximum of 1, are multiplied (a
    geometric mean, weighted by ``LAYER_WEIGHTS``), so a pixel counts where all agree.

    Parameters
    ----------
    model : keras.Model
        An image model (``<classmode>_image``): the image, convolutional layers, global average pooling, and
        softmax heads above it. The maps read its weights as they are when they are made: make them again after
        it trains.

    Raises
    ------
    ShoplensError
        If the model reads no image or has no pooled convolutional feature map.
    """

    def __init__(self, model):
        import keras

        layers, self.layer_weights = zip(*feature_map_layers(model), strict=True)
        # The same layers on an image of any size, so that a photo is read enlarged too: a copy, with the weights
        # the model has now.
        architecture = model.get_config()
        for layer in architecture["layers"]:
            if layer["name"] == "image":
                layer["config"]["batch_shape"] = [None, None, None, 3]
        any_size = keras.Model.from_config(architecture)
        any_size.set_weights(model.get_weights())
        self.feature_maps = [any_size.get_layer(layer.name).output for layer in layers]
        self.heads = [any_size.get_layer(name) for name in model.output]
        # The maps' layers, and what each head reads by the tensor's name: heads reading one tensor share it (a
        # model cannot list an output twice).
        self.model = keras.Model(any_size.get_layer("image").output,
                                 [self.feature_maps, {head.input.name: head.input for head in self.heads}])

    def __call__(self, images, batch_size=64):
        """The maps of a ``(n, height, width, 3)`` uint8 batch: ``(n, height, width)`` float32, at most 1 (all zeros
        where no pixel speaks for the predicted classes).

        Each photo is read as it is and mirrored, at each of ``SCALES``, and its map is the geometric mean of the
        readings' layer maps, each scaled to a maximum of 1 (the mirror's mirrored back): the product's evidence
        moves with it, a map's noise does not, so the maps agree on the product and less elsewhere.
        """
        images = np.asarray(images)
        maps = np.ones(images.shape[:3])  # float64: a product of up to 24 factors
        for scale in SCALES:
            step = max(1, batch_size // scale ** 2)  # the enlarged photos' activations fit in as much memory
            for start in range(0, len(images), step):
                maps[start:start + step] *= self._read(images[start:start + step], scale)
        return (maps ** (1 / (2 * sum(self.layer_weights) * len(SCALES)))).astype(np.float32)

    def _read(self, batch, scale):
        """The product of the batch's layer maps, as it is and mirrored, read ``scale`` times as large, each to the
        power of its layer's weight."""
        import tensorflow as tf

        height, width = batch.shape[1:3]
        pixels = np.concatenate([batch, batch[:, :, ::-1]])
        if scale != 1:
            pixels = tf.cast(tf.round(tf.image.resize(pixels, (scale * height, scale * width))), tf.uint8)
        product = np.ones((len(batch), height, width))
        with tf.GradientTape() as tape:
            features, inputs = self.model(pixels, training=False)
            # Each head's predicted class's logit, not its probability: the softmax's gradient vanishes where the
            # model is sure.
            logits = [_logits(head, tf.cast(inputs[head.input.name], tf.float32)) for head in self.heads]
            score = sum(tf.reduce_sum(tf.reduce_max(z, axis=-1)) for z in logits)
        for feature, gradient, weight in zip(features, tape.gradient(score, features), self.layer_weights, strict=True):
            layer_map = tf.reduce_sum(tf.nn.relu(tf.cast(gradient, tf.float32)) * tf.cast(feature, tf.float32),
                                      axis=-1).numpy()
            layer_map = ndimage.zoom(layer_map, (1, height / layer_map.shape[1], width / layer_map.shape[2]),
                                     order=1, mode="nearest", grid_mode=True)
            layer_map /= np.maximum(layer_map.max(axis=(1, 2), keepdims=True), 1e-12)
            product *= (layer_map[:len(batch)].astype(np.float64) * layer_map[len(batch):, :, ::-1]) ** weight
        return product


def feature_map_layers(model):
    """The layers whose maps :class:`ActivationMaps` reads, with their weights (``LAYER_WEIGHTS``): the last
    convolutional feature map (the input of the global average pooling), and the last layers at twice and four
    times its resolution, those the model has.

    Returns
    -------
    list of (keras.layers.Layer, float)

    Raises
    ------
    ShoplensError
        If the model reads no image or has no pooled convolutional feature map.
    """
    import keras

    names = [layer.name for layer in model.layers]
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    if "image" not in names or not pools:
        raise ShoplensError(f"CROP=auto: the model {model.name} has no convolutional feature map to find the "
                            "product with; use CROP=none")
    last = pools[-1].input
    below = [layer for layer in model.layers[:names.index(pools[-1].name)] if len(layer.output.shape) == 4]
    chosen = [(next(layer for layer in below if layer.output is last), LAYER_WEIGHTS[0])]
    for factor, weight in zip((2, 4), LAYER_WEIGHTS[1:], strict=True):
        chosen += [(layer, weight) for layer in below if layer.output.shape[1] == factor * last.shape[1]][-1:]
    return chosen


def _logits(head, inputs):
    """A softmax head's logits: a dense layer's, or a cosine classifier's (LOSS=normsoftmax)."""
    from shoplens.models.normsoftmax import CosineSoftmax  # Keras: not before a command has set TensorFlow up

    if isinstance(head, CosineSoftmax):
        return head.logits(inputs)
    return inputs @ head.kernel + head.bias


def cam_boxes(maps, threshold=CAM_THRESHOLD, pad=0.0):
    """Boxes of the largest region of each activation map at or above ``threshold``."""
    return mask_boxes(np.asarray(maps) >= threshold, pad)


def crop_boxes(images, activation_maps=None):
    """Where the product is in each photo: by contrast with a plain background, else by the model's map.

    Parameters
    ----------
    images : array_like
        ``(n, height, width, 3)`` uint8, as the image model reads them.
    activation_maps : ActivationMaps, optional
        The image model's maps, for photos on a busy background; without them, those are found by contrast too.

    Returns
    -------
    numpy.ndarray
        ``(n, 4)`` int boxes in pixels of ``images``.
    """
    images = np.asarray(images)
    boxes = contrast_boxes(images)
    busy = ~plain_background(images) if activation_maps is not None else np.zeros(len(images), dtype=bool)
    if busy.any():
        boxes[busy] = cam_boxes(activation_maps(images[busy]))
    return boxes


def find_products(images, activation_maps, batch_size=256, progress=True):
    """:func:`crop_boxes` of every image of a (memory-mapped) ``(n, height, width, 3)`` array, a batch at a time.

    Returns
    -------
    boxes : numpy.ndarray
        ``(n, 4)`` int.
    plain : int
        How many photos had a plain background (boxed by contrast); the others were boxed by the maps.
    """
    from shoplens.progress import progress_bar

    boxes, plain = np.zeros((len(images), 4), dtype=int), 0
    with progress_bar(total=len(images), desc="finding the products", unit="photo", progress=progress) as bar:
        for start in range(0, len(images), batch_size):
            batch = np.asarray(images[start:start + batch_size])
            boxes[start:start + len(batch)] = crop_boxes(batch, activation_maps)
            plain += int(plain_background(batch).sum())
            bar.update(len(batch))
    return boxes, plain


def crop_photo(source, box, size):
    """The crop around ``box``, found on the ``size``-pixel square the photo is padded to as the model reads it, cut
    out of the photo (a path or a file object) decoded at up to ``SHARPNESS`` times that size, as far as its own
    pixels go: ``(size, size, 3)`` uint8."""
    with open_image(source) as photo:
        side = max(size, min(SHARPNESS * size, max(photo.size)))
    if hasattr(source, "seek"):
        source.seek(0)
    sharp = load_image(source, side)
    return crop(sharp[None], np.asarray([box], dtype=np.float64) * (side / size), size)[0]


def _crop_photo_job(job):
    path, box, size = job
    try:
        return crop_photo(path, box, size)
    except OSError as err:
        raise ShoplensError(f"{path}: cannot read image ({err})") from None


def crop_photos(paths, boxes, size, out=None, workers=config.WORKERS, progress=True):
    """:func:`crop_photo` of every photo file, from ``workers`` processes, into ``out`` (an ``(n, size, size, 3)``
    uint8 array, memory-mapped for a large split) or a new array; returns it."""
    from shoplens.parallel import imap

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8) if out is None else out
    jobs = [(str(path), box, size) for path, box in zip(paths, np.asarray(boxes).tolist(), strict=True)]
    for i, photo in enumerate(imap(_crop_photo_job, jobs, "cropping the photos", workers, progress)):
        out[i] = photo
    return out


def crop(images, boxes, size):
    """The square around each box, centred on it and inside the image, resized to ``size`` pixels.

    A square, so that the product keeps its proportions, as the model saw them in training.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size, 3)`` uint8.
    """
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, (image, box) in enumerate(zip(np.asarray(images), np.asarray(boxes), strict=True)):
        height, width = image.shape[:2]
        side = int(round(min(max(box[2] - box[0], box[3] - box[1]), width, height)))
        x0 = int(np.clip(round((box[0] + box[2] - side) / 2), 0, width - side))
        y0 = int(np.clip(round((box[1] + box[3] - side) / 2), 0, height - side))
        out[i] = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR,
                                               box=(x0, y0, x0 + side, y0 + side))
    return out


def iou(boxes, truth):
    """Intersection over union of each box with its true box: ``(n,)`` float."""
    boxes, truth = np.asarray(boxes, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    overlap = np.clip(np.minimum(boxes[:, 2:], truth[:, 2:]) - np.maximum(boxes[:, :2], truth[:, :2]), 0, None)
    inter = overlap.prod(axis=1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1) + (truth[:, 2:] - truth[:, :2]).prod(axis=1)
    return inter / np.maximum(area - inter, 1e-12)
