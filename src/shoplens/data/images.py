"""Checking and decoding product images; shared by every stage that reads them."""
import hashlib
import io
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps

from shoplens import ShoplensError, config

# Product photos are usually shot on white: pad non-square ones, and fill transparent parts, with white.
BACKGROUND = (255, 255, 255)
_GREY_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
# Every image is opened through open_image, which refuses more than MAX_PIXELS itself; Pillow's own
# check (a warning at 89 megapixels) would only add a line to the terminal before that error.
Image.MAX_IMAGE_PIXELS = None


class ImageTooLargeError(ShoplensError):
    """An image with more pixels than ``MAX_PIXELS``, refused before it is decoded."""


def open_image(source, max_pixels=config.MAX_PIXELS, name=None):
    """Open an image (a path or a file object) without decoding it; refuse one over ``max_pixels``.

    A PNG of a few kilobytes can hold 13,000 x 13,000 pixels, a gigabyte once decoded:
    the header says how large it is, so the check costs nothing.
    """
    image = Image.open(source)
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        label = name or (str(source) if isinstance(source, (str, Path)) else "the image")
        raise ImageTooLargeError(f"{label}: {width:,} x {height:,} pixels, more than the limit of "
                                 f"{max_pixels / 1e6:g} megapixels (MAX_PIXELS)")
    return image


def inspect_image(path, hashes=True):
    """Whether an image file can be used, and what identifies its picture.

    Returns ``(reason, sha1, phash, mirror_phash)``: why it cannot be used
    (``"missing_image"``, ``"empty_image"``, ``"corrupt_image"``, ``"image_too_large"``)
    or ``None`` when it decodes completely; and for a usable one, with ``hashes``, the
    sha1 of its bytes (the same file), its perceptual hash (the same picture,
    re-encoded or resized) and that of its mirror image (the picture flipped left to
    right), as hex strings, for finding duplicates.
    """
    unusable = (None, None, None)
    if not path:
        return "missing_image", *unusable
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "missing_image", *unusable
    if not data:
        return "empty_image", *unusable
    try:
        with open_image(io.BytesIO(data)) as image:
            # A reduced-scale JPEG decode still reads every byte, so truncation is caught, faster.
            image.draft("RGB", (64, 64))
            image.load()
            if hashes:
                rgb = to_rgb(image)
                phashes = str(imagehash.phash(rgb)), str(imagehash.phash(ImageOps.mirror(rgb)))
    except ImageTooLargeError:
        return "image_too_large", *unusable
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return "corrupt_image", *unusable
    if not hashes:
        return None, None, None, None
    return None, hashlib.sha1(data).hexdigest(), *phashes


def check_image(path):
    """Why an image cannot be used (see :func:`inspect_image`), or ``None`` when it can."""
    return inspect_image(path, hashes=False)[0]


def to_rgb(image):
    """An 8-bit RGB image of any Pillow image: turned upright by its EXIF orientation, transparency
    composited on white, 16-bit and floating-point greys scaled to 8 bits (not clipped to white)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _GREY_MODES:
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if pixels.max(initial=0) <= 1.0 else 255.0
        else:
            top = 255.0 if pixels.max(initial=0) <= 255 else 65535.0
        image = Image.fromarray(np.clip(pixels * (255.0 / top), 0, 255).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba)
    return image.convert("RGB")


def load_image(source, size, max_pixels=config.MAX_PIXELS, name=None):
    """Decode an image (a path or a file object) into a ``(size, size, 3)`` uint8 array, padded to a square.

    Raises ``OSError`` (``PIL.UnidentifiedImageError`` included) if it cannot be read, and
    :class:`ImageTooLargeError` (which names it ``name``) if it has more than ``max_pixels`` pixels.
    """
    with open_image(source, max_pixels, name) as image:
        image.draft("RGB", (size, size))
        image = ImageOps.pad(to_rgb(image), (size, size), Image.Resampling.BILINEAR, color=BACKGROUND)
    return np.asarray(image, dtype=np.uint8)


def load_image_job(job):
    """:func:`load_image` of a ``(path, size)`` job, for process pools; a one-line error if it fails."""
    path, size = job
    try:
        return load_image(path, size)
    except OSError as err:
        raise ShoplensError(f"{path}: cannot read image ({err})") from None
