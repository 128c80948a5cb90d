"""The classifiers: an image tower, a text tower, or both fused, with one softmax head per level
(multilabel) or one over the full category paths (multiclass).

Every model takes a dict of inputs, ``{"image": uint8 (size, size, 3)}`` and/or
``{"title": cleaned title string}``, so preprocessing lives inside the saved model
and a reloaded model needs nothing but :mod:`shoplens` to predict.
"""
from pathlib import Path

import keras
from keras import layers

from shoplens import ShoplensError
from shoplens.pipeline import weights_kind

# keras.applications backbones: their module (for preprocess_input), constructor, and the file of headless
# ImageNet weights that WEIGHTS=imagenet downloads (a copy of it can be given as WEIGHTS=<file> offline).
BACKBONES = {
    "vgg16": ("vgg16", "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenetv2": ("mobilenet_v2", "MobileNetV2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    "efficientnetb0": ("efficientnet", "EfficientNetB0", "efficientnetb0_notop.h5"),
    "resnet50": ("resnet50", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}
TEXT_ENCODERS = ("bag", "cnn", "lstm")
IMAGE_EMBEDDING = "image_embedding"  # the layer feature extraction reads
TEXT_EMBEDDING = "text_embedding"


@keras.saving.register_keras_serializable(package="shoplens")
class BackbonePreprocess(layers.Layer):
    """The ``preprocess_input`` of a ``keras.applications`` backbone, as a saveable layer."""

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, inputs):
        return getattr(keras.applications, BACKBONES[self.backbone][0]).preprocess_input(inputs)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


def build_model(heads, image_size=None, vocabulary=None, title_length=16, backbone="vgg16", weights="imagenet",
                finetune=False, text_encoder="bag", embedding_dim=64, dropout=0.3, modality_dropout=0.3):
    """Build an uncompiled classifier.

    Parameters
    ----------
    heads : dict
        Output name -> number of classes: one entry per level (multilabel) or
        ``{"category": number of paths}`` (multiclass).
    image_size : int, optional
        Side of the square input images; ``None`` for a text-only model.
    vocabulary : list of str, optional
        Title tokens, most frequent first; ``None`` for an image-only model.
    title_length : int
        Tokens read per title.
    backbone : {"vgg16", "mobilenetv2", "efficientnetb0", "resnet50", "simple"}
    weights : {"imagenet", "none"} or path
        Backbone weights: downloaded ImageNet ones, random, or a local weights file.
    finetune : bool
        Train the backbone's weights too (otherwise they stay frozen).
    text_encoder : {"bag", "cnn", "lstm"}
    dropout, modality_dropout : float
        Dropout before the heads; and, in a combined model, the share of items whose
        image embedding is dropped as a whole in training.
    """
    inputs, features = {}, []
    if image_size:
        inputs["image"] = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
        features.append(image_tower(inputs["image"], backbone, weights, finetune))
    if vocabulary:
        inputs["title"] = keras.Input((), dtype="string", name="title")
        features.append(text_tower(inputs["title"], vocabulary, title_length, text_encoder, embedding_dim))
    if len(features) > 1:
        image_features, text_features = features
        # Modality dropout: for some items the whole image embedding is dropped, so the title
        # path learns to classify on its own and the image adds evidence instead of drowning it.
        image_features = layers.Dropout(modality_dropout, noise_shape=(None, 1))(image_features)
        x = layers.Concatenate(name="fused")([image_features, text_features])
    else:
        x = features[0]
    x = layers.Dropout(dropout)(x)
    # Softmax in float32 whatever the compute policy, for stable losses under mixed precision.
    outputs = {name: layers.Dense(n, activation="softmax", dtype="float32", name=name)(x) for name, n in heads.items()}
    return keras.Model(inputs, outputs, name="shoplens_classifier")


def image_tower(image, backbone="vgg16", weights="imagenet", finetune=False, embedding_dim=256):
    """Preprocess, run the backbone, project to an embedding.

    Augmentation happens in the training input pipeline (:func:`shoplens.models.datasets.augment`),
    where it overlaps with training instead of adding to every step.
    """
    x = layers.Rescaling(1.0)(image)  # uint8 -> the float type of the policy
    if backbone == "simple":
        x = simple_cnn(x)
    else:
        x = BackbonePreprocess(backbone)(x)
        base = _pretrained(backbone, weights, tuple(image.shape[1:]))
        base.trainable = finetune
        # A frozen base also keeps its batch-norm statistics frozen (training=False).
        x = base(x, training=None if finetune else False)
    return layers.Dense(embedding_dim, activation="relu", name=IMAGE_EMBEDDING)(x)


def simple_cnn(x):
    """A small CNN with batch norm that trains from scratch on a CPU in minutes.

    A strided first convolution keeps the full-resolution work small; width grows
    as resolution falls. Batch-norm momentum is low because short runs on small
    catalogs give its running statistics few steps to settle.
    """
    x = layers.Rescaling(1 / 255.0)(x)
    x = _conv_bn_relu(x, 32, strides=2)
    x = _conv_bn_relu(x, 96)
    x = layers.MaxPooling2D()(x)
    x = _conv_bn_relu(x, 192)
    x = layers.MaxPooling2D()(x)
    x = _conv_bn_relu(x, 384)
    return layers.GlobalAveragePooling2D()(x)


def _conv_bn_relu(x, width, strides=1):
    x = layers.Conv2D(width, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.Activation("relu")(x)


def text_tower(title, vocabulary, title_length=16, encoder="bag", embedding_dim=64):
    """Token ids over the fitted vocabulary, an embedding, and a bag, CNN or LSTM encoder."""
    if encoder not in TEXT_ENCODERS:
        raise ShoplensError(f"unknown TEXT_ENCODER '{encoder}' (choose from {', '.join(TEXT_ENCODERS)})")
    tokens = layers.TextVectorization(
        vocabulary=vocabulary, standardize=None, split="whitespace", output_sequence_length=title_length
    )(title)
    x = layers.Embedding(len(vocabulary) + 2, embedding_dim, mask_zero=True)(tokens)
    if encoder == "bag":
        x = layers.GlobalAveragePooling1D()(x)
    elif encoder == "cnn":
        x = layers.Conv1D(128, 3, padding="same", activation="relu")(x)
        x = layers.GlobalMaxPooling1D()(x)
    else:
        x = layers.Bidirectional(layers.LSTM(64))(x)
    return layers.Dense(128, activation="relu", name=TEXT_EMBEDDING)(x)


def _pretrained(backbone, weights, input_shape):
    """A headless ``keras.applications`` backbone with global average pooling."""
    if backbone not in BACKBONES:
        raise ShoplensError(f"unknown BACKBONE '{backbone}' (choose from {', '.join([*BACKBONES, 'simple'])})")
    _, constructor, download = BACKBONES[backbone]
    constructor = getattr(keras.applications, constructor)
    kind = weights_kind(weights)
    if kind == "file" and not Path(weights).is_file():
        raise ShoplensError(f"{weights}: weights file not found (WEIGHTS takes imagenet, none or a file)")
    if kind == "imagenet":
        try:
            return constructor(include_top=False, weights="imagenet", input_shape=input_shape, pooling="avg")
        except Exception as err:  # keras.utils.get_file raises a bare Exception when offline
            raise ShoplensError(
                f"cannot download the ImageNet weights of {backbone} ({_first_line(err)}); offline, give a copy of "
                f"{download} (or a Keras .weights.h5 of the same network) as WEIGHTS=<file>"
            ) from None
    try:
        base = constructor(include_top=False, weights=None, input_shape=input_shape, pooling="avg")
    except ValueError as err:  # e.g. "Input size must be at least 32x32"
        raise ShoplensError(f"BACKBONE={backbone} cannot read {input_shape[0]} px images ({_first_line(err)}); "
                            "use a larger IMAGE_SIZE") from None
    if kind == "file":
        try:
            base.load_weights(weights)
        except (OSError, ValueError, KeyError) as err:
            raise ShoplensError(f"{weights}: cannot load as {backbone} weights ({_first_line(err)})") from None
    return base


def _first_line(err):
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
