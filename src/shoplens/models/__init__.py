"""The classifiers: building, training, evaluating, predicting, and extracting embeddings."""
