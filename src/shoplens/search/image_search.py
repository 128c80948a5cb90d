"""Query photos: decoded as the image model reads them, and known by their bytes.

The SHA-1 of a query photo's bytes is what keeps a product out of its own results:
searching with a catalog photo (a path or an upload of the same file) never answers
with that photo.
"""
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from shoplens import ShoplensError
from shoplens.data.images import load_image


def read_photo(image, size, with_photo=False):
    """Decode a query photo (path, bytes or file-like) into ``(pixels, sha1)``; with ``with_photo``, also its bytes
    and its ``(width, height)`` upright, for cropping it.

    Returns
    -------
    pixels : ndarray
        ``(size, size, 3)`` uint8: the photo fitted into the square and padded
        (:func:`shoplens.data.images.load_image`).
    sha1 : str
        Hex digest of the photo's bytes.
    """
    name = str(image) if isinstance(image, (str, Path)) else "the uploaded image"
    if isinstance(image, (str, Path)):
        if not Path(image).is_file():
            raise ShoplensError(f"{image}: no such image file")
        data = Path(image).read_bytes()
    elif isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    else:
        data = image.read()
    try:
        pixels = load_image(io.BytesIO(data), size, name=name)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ShoplensError(f"{name}: cannot read as an image ({reason})") from None
    if not with_photo:
        return pixels, hashlib.sha1(data).hexdigest()
    with Image.open(io.BytesIO(data)) as photo:
        width, height = photo.size
        # EXIF orientations 5 to 8 turn the photo a quarter, as load_image does.
        upright = (height, width) if photo.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (width, height)
    return pixels, hashlib.sha1(data).hexdigest(), data, upright


def photo_box(box, photo_size, size):
    """A box found on the ``size``-pixel square a photo was padded to, in pixels of the photo itself.

    Returns
    -------
    list of int
        ``[x0, y0, x1, y1]``, within the photo.
    """
    width, height = photo_size
    scale, offset = _placement(photo_size, size)
    found = np.round((np.asarray(box, dtype=np.float64) - offset) / scale).astype(int)
    return np.clip(found, 0, [width, height, width, height]).tolist()


def padded_box(box, photo_size, size):
    """A box in a photo's pixels, on the ``size``-pixel square the photo is padded to: ``[x0, y0, x1, y1]``,
    float (the inverse of :func:`photo_box`)."""
    scale, offset = _placement(photo_size, size)
    return (np.asarray(box, dtype=np.float64) * scale + offset).tolist()


def _placement(photo_size, size):
    """How ImageOps.pad places a photo in a ``size``-pixel square: its scale, and the offset of each box
    coordinate (the photo fitted into the square, centred along its shorter side)."""
    width, height = photo_size
    scale = size / max(width, height)
    return scale, np.array([round((size - width * scale) / 2), round((size - height * scale) / 2)] * 2)
