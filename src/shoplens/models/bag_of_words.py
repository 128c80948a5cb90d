"""A bag-of-words text model (``TEXT_ENCODER=bag``) run in NumPy, for one query at a time.

Text search reads every query with the text model. Through Keras, one short title
costs a TensorFlow call of about a millisecond, most of it dispatch, and wakes
TensorFlow's thread pools, which then compete with the web server's threads for
the CPUs. The bag-of-words model is small enough to run as a few NumPy lines
instead: token ids, the mean of their embeddings, a dense layer and a softmax over
the category paths. :func:`category_reader` picks this path for a bag-of-words
model and Keras for the others (CNN, LSTM).

Text search wants the category paths' probabilities, not each level's. A path's
log-probability is the sum of its classes' log-softmaxes, and the log-softmaxes'
normalisers are the same for every path, so over the valid paths (as
:func:`shoplens.models.decode.decode_paths` renormalises) it is a softmax of the sum
of the classes' logits: the level heads fold into one linear layer with a column
per path, made once.

NumPy computes in float32 where a model trained under mixed precision computed in
bfloat16, so probabilities agree to about two decimals, not bit for bit.
"""
import numpy as np

from shoplens.models.decode import path_probs, path_table

PADDING, UNKNOWN = 0, 1  # the token ids TextVectorization gives padding and out-of-vocabulary words


class BagOfWords:
    """The forward pass of a trained text-only bag-of-words model, to its category paths' probabilities.

    Use :meth:`of` rather than the constructor.

    Parameters
    ----------
    vocabulary : list of str
        Tokens; a token's id is its position plus 2.
    title_length : int
        Tokens read per title.
    embeddings : array of shape (len(vocabulary) + 2, dim)
        Token embeddings, padding and unknown words included.
    dense : tuple of arrays
        Kernel and bias of the ReLU layer on the mean embedding.
    paths : tuple of arrays
        Kernel ``(dim, n_paths)`` and bias ``(n_paths,)`` of the paths' logits.
    """

    def __init__(self, vocabulary, title_length, embeddings, dense, paths):
        self.ids = {token: i + 2 for i, token in enumerate(vocabulary)}
        self.title_length = title_length
        self.embeddings = embeddings
        self.dense = dense
        self.paths = paths

    @classmethod
    def of(cls, model, metadata):
        """The NumPy model of a Keras bag-of-words text model and its metadata; ``None`` for any other
        architecture."""
        from shoplens.models.build_model import TEXT_EMBEDDING  # imports Keras: only once there is a model

        kinds = [type(layer).__name__ for layer in model.layers]
        expected = ["InputLayer", "TextVectorization", "Embedding", "GlobalAveragePooling1D", "Dense", "Dropout"]
        if kinds[:len(expected)] != expected or set(kinds[len(expected):]) != {"Dense"}:
            return None
        vectorize, dense = model.layers[1], model.get_layer(TEXT_EMBEDDING)
        options = vectorize.get_config()
        if (options["standardize"], options["split"], dense.activation.__name__) != (None, "whitespace", "relu"):
            return None
        heads = {name: model.get_layer(name) for name in model.output_names}
        if any(head.activation.__name__ != "softmax" for head in heads.values()):
            return None
        weights = {name: tuple(map(_float32, head.get_weights())) for name, head in heads.items()}
        labels = metadata["labels"]
        if metadata["classmode"] == "multiclass":
            paths = weights["category"]
        else:
            table = path_table(labels["paths"], labels["levels"])
            paths = tuple(sum(weights[name][part][..., table[:, k]] for k, name in enumerate(labels["levels"]))
                          for part in (0, 1))
        vocabulary = vectorize.get_vocabulary(include_special_tokens=False)
        return cls(vocabulary, options["output_sequence_length"], _float32(model.layers[2].get_weights()[0]),
                   tuple(map(_float32, dense.get_weights())), paths)

    def __call__(self, titles):
        """``(len(titles), n_paths)`` probabilities of the category paths for cleaned titles."""
        pooled = np.zeros((len(titles), self.embeddings.shape[1]), np.float32)
        for row, title in enumerate(titles):
            ids = [self.ids.get(token, UNKNOWN) for token in str(title).split()[:self.title_length]]
            if ids:  # a title without tokens is all padding, which the mean leaves out: zeros
                pooled[row] = self.embeddings[ids].mean(axis=0)
        kernel, bias = self.dense
        x = np.maximum(pooled @ kernel + bias, 0.0)
        kernel, bias = self.paths
        return _softmax(x @ kernel + bias)


def category_reader(model, metadata):
    """A function from cleaned titles to their ``(n, n_paths)`` category paths' probabilities: NumPy for a
    bag-of-words model, else Keras."""
    numpy_model = BagOfWords.of(model, metadata)
    if numpy_model is not None:
        return numpy_model
    return lambda titles: path_probs(model.predict_on_batch({"title": np.asarray(titles, dtype=object)}), metadata)


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _float32(array):
    return np.asarray(array, dtype=np.float32)
