"""Model inputs made once from the splits (``make features``): images, vocabulary, label encoders."""
