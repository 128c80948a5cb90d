"""The image backbones by name, without Keras: the command line, the pipeline's keys and the model builder
read them here, so that the command line lists them without importing TensorFlow.

There are two kinds. A *pretrained* backbone is a ``keras.applications`` network with
ImageNet weights: it reads ``PRETRAINED_IMAGE_SIZE`` images, and trains on its own
activations, computed once and cached (:mod:`shoplens.models.backbone_features`). A
*from-scratch* backbone trains end to end on the ``IMAGE_SIZE`` images of the features,
with the training input pipeline's augmentation.
"""
from typing import NamedTuple


class Backbone(NamedTuple):
    module: str  # keras.applications module, for preprocess_input
    constructor: str
    download: str  # the file of headless ImageNet weights WEIGHTS=imagenet downloads; offline, give a copy of it
    block: str  # a pattern of the names of a block's layers; the last layer matched per block is its output


# The pretrained backbones.
BACKBONES = {
    "vgg16": Backbone("vgg16", "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", r"(block\d)_pool"),
    "mobilenetv2": Backbone("mobilenet_v2", "MobileNetV2",
                            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
                            r"block_(\d+)_(?:add|project_BN)"),
    "efficientnetb0": Backbone("efficientnet", "EfficientNetB0", "efficientnetb0_notop.h5",
                               r"block(\d[a-z])_(?:add|project_bn)"),
    "resnet50": Backbone("resnet50", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                         r"conv(\d_block\d+)_out"),
}
# The backbones trained from scratch: the small CNN (random weights only) and a Vision Transformer
# (keras_hub's ViTBackbone; random weights or a weights file of the same configuration, config.VIT_*).
FROM_SCRATCH = ("simple", "vit")
NAMES = (*BACKBONES, *FROM_SCRATCH)


def is_pretrained(backbone):
    """Whether ``backbone`` is a pretrained ``keras.applications`` one, trained on its cached activations."""
    return backbone in BACKBONES


def takes_weights(backbone):
    """Whether ``WEIGHTS`` applies to ``backbone``: to all but the small CNN, which always starts at random."""
    return backbone != "simple"
