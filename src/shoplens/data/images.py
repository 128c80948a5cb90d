"""Checking and decoding product images; shared by every stage that reads them."""
import os

import numpy as np
from PIL import Image, ImageOps

from shoplens import ShoplensError

# Product photos are usually shot on white: pad non-square ones with white.
PAD_COLOUR = (255, 255, 255)


def check_image(path):
    """Return why an image cannot be used (``"missing_image"``, ``"empty_image"``,
    ``"corrupt_image"``), or ``None`` when it decodes completely."""
    if not path:
        return "missing_image"
    try:
        if os.path.getsize(path) == 0:
            return "empty_image"
    except OSError:
        return "missing_image"
    try:
        with Image.open(path) as image:
            # A reduced-scale JPEG decode still reads every byte, so truncation is caught, faster.
            image.draft("RGB", (64, 64))
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return "corrupt_image"
    return None


def load_image(path, size):
    """Decode an image into a ``(size, size, 3)`` uint8 array, padded to a square.

    Raises ``OSError`` (``PIL.UnidentifiedImageError`` included) if it cannot be read.
    """
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        image = ImageOps.pad(image.convert("RGB"), (size, size), Image.Resampling.BILINEAR, color=PAD_COLOUR)
    return np.asarray(image, dtype=np.uint8)


def load_image_job(job):
    """:func:`load_image` of a ``(path, size)`` job, for process pools; a one-line error if it fails."""
    path, size = job
    try:
        return load_image(path, size)
    except OSError as err:
        raise ShoplensError(f"{path}: cannot read image ({err})") from None
