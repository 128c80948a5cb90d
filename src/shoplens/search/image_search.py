"""Query photos: decoded as the image model reads them, and known by their bytes.

The SHA-1 of a query photo's bytes is what keeps a product out of its own results:
searching with a catalog photo (a path or an upload of the same file) never answers
with that photo.
"""
import hashlib
import io
from pathlib import Path

from PIL import Image

from shoplens import ShoplensError
from shoplens.data.images import load_image


def read_photo(image, size):
    """Decode a query photo (path, bytes or file-like) into ``(pixels, sha1)``.

    Returns
    -------
    pixels : ndarray
        ``(size, size, 3)`` uint8.
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
    return pixels, hashlib.sha1(data).hexdigest()
