"""Normalised softmax (``LOSS=normsoftmax``): a classifier whose training is deep metric learning.

"Classification is a Strong Baseline for Deep Metric Learning" (Zhai and Wu, 2018):
the embedding and each class's weight vector are L2-normalised, so a logit is the
cosine between the product and the class, divided by a temperature. The softmax
then pulls every product's embedding towards its class's direction and away from
the others', which is what a cosine nearest-neighbour search rewards; a plain
softmax head also learns from the embedding's length, which the search ignores.
An optional additive cosine margin (CosFace, Wang et al., 2018) asks the true class
to win by that much: it is applied in the loss, where the labels are, so the saved
head stays a plain function of the image.
"""
import math

import keras
from keras import layers, ops

from shoplens import config


@keras.saving.register_keras_serializable(package="shoplens")
class CosineSoftmax(layers.Layer):
    """Class probabilities from the cosines of an embedding with ``units`` learnt class directions.

    Parameters
    ----------
    units : int
        Classes.
    temperature : float
        The cosines are divided by it before the softmax: lower is sharper.
    """

    def __init__(self, units, temperature=config.TEMPERATURE, **kwargs):
        super().__init__(**kwargs)
        self.units, self.temperature = int(units), float(temperature)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel")

    def call(self, inputs):
        return ops.softmax(self.logits(inputs))

    def logits(self, inputs):
        """The cosines with the class directions, divided by the temperature."""
        cosines = ops.matmul(ops.normalize(inputs, axis=-1), ops.normalize(self.kernel, axis=0))
        return cosines / self.temperature

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "temperature": self.temperature}


class MarginCrossentropy(keras.losses.Loss):
    """Sparse cross-entropy of a :class:`CosineSoftmax` head whose true class's cosine is lowered by ``margin``.

    The head's probabilities ``p`` hold ``exp(cos / T)``; lowering the true class's cosine by the
    margin multiplies its term by ``exp(-margin / T)``, so the loss is computed from ``p`` alone.
    With no margin it is the plain sparse cross-entropy.
    """

    def __init__(self, margin, temperature=config.TEMPERATURE, name="margin_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.factor = math.exp(-float(margin) / float(temperature))

    def call(self, y_true, y_pred):
        y_true = ops.cast(ops.reshape(y_true, (-1, 1)), "int32")
        p = ops.clip(ops.take_along_axis(ops.cast(y_pred, "float32"), y_true, axis=1)[:, 0], 1e-7, 1.0)
        return -ops.log(self.factor * p / (self.factor * p + 1.0 - p))
