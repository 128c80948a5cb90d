"""The classifiers: an image tower, a text tower, or both fused, with one softmax head per level
(multilabel) or one over the full category paths (multiclass).

Every model takes a dict of inputs, ``{"image": uint8 (size, size, 3)}`` and/or
``{"title": cleaned title string}``, so preprocessing lives inside the saved model
and a reloaded model needs nothing but :mod:`shoplens` to predict.

A pretrained backbone is built into the model's own graph, not nested, so training
can start part-way up it: :func:`backbone_cut` names the layer below the blocks
that are trained (or the pooled features when none is), and a model from that
layer's output to the heads trains on activations computed once
(:mod:`shoplens.models.backbone_features`). Its batch-norm layers always run in
inference mode: they hold the statistics the weights were trained with, and
normalising by a batch's statistics instead destroys the features.
"""
import re
from pathlib import Path

import keras
from keras import layers

from shoplens import ShoplensError, config
from shoplens.models.backbones import BACKBONES, NAMES
from shoplens.models.normsoftmax import CosineSoftmax
from shoplens.pipeline import weights_kind

MIN_IMAGE_SIZE = 32  # the smallest input of every keras.applications backbone
TEXT_ENCODERS = ("bag", "cnn", "lstm")
IMAGE_FEATURES = "image_features"  # a pretrained backbone's pooled output
IMAGE_EMBEDDING = "image_embedding"  # the layer feature extraction reads
TEXT_EMBEDDING = "text_embedding"


@keras.saving.register_keras_serializable(package="shoplens")
class BackbonePreprocess(layers.Layer):
    """The ``preprocess_input`` of a ``keras.applications`` backbone, as a saveable layer."""

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, inputs):
        return getattr(keras.applications, BACKBONES[self.backbone].module).preprocess_input(inputs)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


def build_model(heads, image_size=None, vocabulary=None, title_length=16, backbone="vgg16", weights="imagenet",
                finetune_blocks=0, text_encoder="bag", embedding_dim=64, dropout=0.3, modality_dropout=0.3,
                loss="softmax", temperature=config.TEMPERATURE, vit_patch_size=config.VIT_PATCH_SIZE,
                vit_layers=config.VIT_LAYERS):
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
    backbone : {"vgg16", "mobilenetv2", "efficientnetb0", "resnet50", "simple", "vit"}
        A pretrained ``keras.applications`` backbone, or one trained from scratch
        (:mod:`shoplens.models.backbones`).
    weights : {"imagenet", "none"} or path
        Backbone weights: downloaded ImageNet ones, random, or a local weights file.
    finetune_blocks : int
        Blocks of a pretrained backbone, counted from the top, whose weights train (the
        layers after them too); 0 keeps the backbone frozen.
    text_encoder : {"bag", "cnn", "lstm"}
    dropout, modality_dropout : float
        Dropout before the heads; and, in a combined model, the share of items whose
        image embedding is dropped as a whole in training.
    loss : {"softmax", "normsoftmax"}
        The heads of a model with an image tower: dense softmax layers, or cosine classifiers
        (:mod:`shoplens.models.normsoftmax`) over a linear image embedding.
    temperature : float
        The cosine classifiers' temperature (``loss="normsoftmax"``).
    vit_patch_size, vit_layers : int
        ``backbone="vit"``: the side of its patches, and its transformer layers.
    """
    if loss not in config.LOSSES:
        raise ShoplensError(f"unknown LOSS '{loss}' (choose from {', '.join(config.LOSSES)})")
    normsoftmax = loss == "normsoftmax" and bool(image_size)
    inputs, features = {}, []
    if image_size:
        inputs["image"] = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
        # Normalised softmax learns directions: a ReLU would keep the embedding to the positive orthant.
        features.append(image_tower(inputs["image"], backbone, weights, finetune_blocks,
                                    embedding_activation=None if normsoftmax else "relu",
                                    vit_patch_size=vit_patch_size, vit_layers=vit_layers))
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
    if normsoftmax:
        outputs = {name: CosineSoftmax(n, temperature, dtype="float32", name=name)(x) for name, n in heads.items()}
    else:
        outputs = {name: layers.Dense(n, activation="softmax", dtype="float32", name=name)(x)
                   for name, n in heads.items()}
    return keras.Model(inputs, outputs, name="shoplens_classifier")


def image_tower(image, backbone="vgg16", weights="imagenet", finetune_blocks=0, embedding_dim=256,
                embedding_activation="relu", vit_patch_size=config.VIT_PATCH_SIZE, vit_layers=config.VIT_LAYERS):
    """Preprocess, run the backbone, project to an embedding.

    Augmentation happens in the training input pipeline (:func:`shoplens.models.datasets.augment`),
    where it overlaps with training instead of adding to every step.
    """
    x = layers.Rescaling(1.0)(image)  # uint8 -> the float type of the policy
    if backbone == "simple":
        x = simple_cnn(x)
    elif backbone == "vit":
        x = vit_backbone(x, weights, vit_patch_size, vit_layers)
    else:
        x = pretrained_backbone(BackbonePreprocess(backbone)(x), backbone, weights, finetune_blocks)
    return layers.Dense(embedding_dim, activation=embedding_activation, name=IMAGE_EMBEDDING)(x)


def pretrained_backbone(x, backbone, weights, finetune_blocks=0):
    """A ``keras.applications`` backbone built on ``x``, pooled: its layers join the model's own graph.

    Every layer is frozen but those after the cut (:func:`backbone_cut`); batch norm
    stays frozen everywhere, so it runs in inference mode even while the blocks around
    it fine-tune.
    """
    base = _pretrained(backbone, weights, x)
    cut = backbone_cut(base, backbone, finetune_blocks)
    names = [layer.name for layer in base.layers]
    after_cut = set(names[names.index(cut) + 1:]) if cut else set()
    for layer in base.layers:
        layer.trainable = layer.name in after_cut and not isinstance(layer, layers.BatchNormalization)
    return layers.GlobalAveragePooling2D(name=IMAGE_FEATURES)(base.output)


def backbone_cut(model, backbone, finetune_blocks):
    """The layer whose output training reads instead of the image: the output of the block below the
    ``finetune_blocks`` top ones, or, with none to fine-tune, the pooled features."""
    if not finetune_blocks:
        return IMAGE_FEATURES if IMAGE_FEATURES in [layer.name for layer in model.layers] else None
    pattern = re.compile(BACKBONES[backbone].block)
    block_outputs = {}  # block id -> its last layer, in order
    for layer in model.layers:
        found = pattern.fullmatch(layer.name)
        if found:
            block_outputs[found.group(1)] = layer.name
    outputs = list(block_outputs.values())
    if not 1 <= finetune_blocks < len(outputs):
        raise ShoplensError(f"FINETUNE_BLOCKS must be from 1 to {len(outputs) - 1} for {backbone}, "
                            f"got {finetune_blocks}")
    return outputs[-1 - finetune_blocks]


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


def vit_backbone(x, weights="none", patch_size=config.VIT_PATCH_SIZE, num_layers=config.VIT_LAYERS):
    """keras_hub's Vision Transformer on ``x`` (pixels 0-255), trained from scratch: the mean of its patch tokens.

    Its layers are keras_hub's own, nested as one ``ViTBackbone`` layer named ``vit``, so that
    ``WEIGHTS=<file>`` takes what ``model.get_layer("vit").save_weights(...)`` wrote (or a
    ``ViTBackbone.save_weights`` of the same configuration: ``config.VIT_*``, no class token).
    There are no ImageNet weights at these sizes to download.
    """
    import keras_hub  # only a ViT needs it

    size, kind = x.shape[1], weights_kind(weights)
    if kind == "imagenet":
        raise ShoplensError("BACKBONE=vit has no ImageNet weights (none are made at these sizes): give WEIGHTS=none "
                            "to train it from scratch, or WEIGHTS=<file> of a ViT of the same configuration")
    if kind == "file" and not Path(weights).is_file():
        raise ShoplensError(f"{weights}: weights file not found (WEIGHTS takes none or a file for BACKBONE=vit)")
    if size % patch_size:
        raise ShoplensError(f"VIT_PATCH_SIZE={patch_size} does not divide the {size} px images (IMAGE_SIZE); "
                            "give a patch size that does")
    # Dropout of 0.1 in the encoder, as ViT trained from scratch on ImageNet (Dosovitskiy et al., 2021).
    vit = keras_hub.models.ViTBackbone(
        image_shape=(size, size, 3), patch_size=patch_size, num_layers=num_layers, num_heads=config.VIT_HEADS,
        hidden_dim=config.VIT_HIDDEN_DIM, mlp_dim=config.VIT_MLP_DIM, dropout_rate=0.1, use_class_token=False,
        name="vit")
    if kind == "file":
        _load_vit_weights(vit, weights, patch_size, num_layers)
    x = layers.Rescaling(1 / 127.5, offset=-1)(x)
    return layers.GlobalAveragePooling1D(name="vit_pooled")(vit(x))


def _load_vit_weights(vit, weights, patch_size, num_layers):
    """Load a weights file into the ViT, or a one-line error naming the file and the configuration it needs."""
    import h5py

    described = (f"a ViT of VIT_PATCH_SIZE={patch_size}, VIT_LAYERS={num_layers}, "
                 f"VIT_HIDDEN_DIM={config.VIT_HIDDEN_DIM}, VIT_HEADS={config.VIT_HEADS}, "
                 f"VIT_MLP_DIM={config.VIT_MLP_DIM} on {vit.image_shape[0]} px images")
    try:
        with h5py.File(weights, "r") as file:  # Keras loads a file of more layers without a word: count its arrays
            arrays = []
            file.visititems(lambda name, item: arrays.append(name) if isinstance(item, h5py.Dataset) else None)
        if len(arrays) != len(vit.weights):
            raise ValueError(f"it holds {len(arrays)} arrays, the ViT {len(vit.weights)}")
        vit.load_weights(weights)
    except (OSError, ValueError, KeyError) as err:
        raise ShoplensError(f"{weights}: cannot load as the weights of {described} ({_first_line(err)})") from None


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


def _pretrained(backbone, weights, x):
    """A headless ``keras.applications`` backbone on the tensor ``x``, with its weights."""
    if backbone not in BACKBONES:
        raise ShoplensError(f"unknown BACKBONE '{backbone}' (choose from {', '.join(NAMES)})")
    constructor, download = getattr(keras.applications, BACKBONES[backbone].constructor), BACKBONES[backbone].download
    if x.shape[1] < MIN_IMAGE_SIZE:  # Keras only warns, given an input tensor: the features would be one pixel
        raise ShoplensError(f"BACKBONE={backbone} cannot read {x.shape[1]} px images (at least {MIN_IMAGE_SIZE}); "
                            "use a larger PRETRAINED_IMAGE_SIZE")
    kind = weights_kind(weights)
    if kind == "file" and not Path(weights).is_file():
        raise ShoplensError(f"{weights}: weights file not found (WEIGHTS takes imagenet, none or a file)")
    if kind == "imagenet":
        try:
            return constructor(include_top=False, weights="imagenet", input_tensor=x)
        except Exception as err:  # keras.utils.get_file raises a bare Exception when offline
            raise ShoplensError(
                f"cannot download the ImageNet weights of {backbone} ({_first_line(err)}); offline, give a copy of "
                f"{download} (or a Keras .weights.h5 of the same network) as WEIGHTS=<file>"
            ) from None
    base = constructor(include_top=False, weights=None, input_tensor=x)
    if kind == "file":
        try:
            base.load_weights(weights)
        except (OSError, ValueError, KeyError) as err:
            raise ShoplensError(f"{weights}: cannot load as {backbone} weights ({_first_line(err)})") from None
    return base


def _first_line(err):
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
