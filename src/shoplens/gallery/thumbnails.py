"""Small JPEG copies of product images for the gallery grid, made once and kept on disk.

A thumbnail's file name is a hash of its source image's path, size and
modification time and of the thumbnail size, so an image that changes gets a new
thumbnail and a stale one is never served.
"""
import hashlib
import tempfile
from pathlib import Path

from PIL import Image

from shoplens import config
from shoplens.data.images import open_image, to_rgb
from shoplens.outputs import atomic_path


class Thumbnails:
    """A disk cache of thumbnails.

    Parameters
    ----------
    cache_dir : path
        Folder of the cached files; made when the first thumbnail is written.
    size : int
        Longest side in pixels; smaller images are re-encoded, never enlarged.
    quality : int
        JPEG quality.
    """

    def __init__(self, cache_dir=config.THUMBNAILS_DIR, size=config.THUMBNAIL_SIZE, quality=85):
        if int(size) < 16:
            raise ValueError(f"thumbnail size must be at least 16 pixels, got {size}")
        self.cache_dir = Path(cache_dir)
        self.size = int(size)
        self.quality = quality

    def get(self, source):
        """Return the path of the thumbnail of the image file ``source``, making it on first use.

        Raises ``OSError`` if the source cannot be read or decoded.
        """
        source = Path(source)
        stat = source.stat()
        key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.size}|{self.quality}"
        path = self.cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()}.jpg"
        if not path.is_file():
            self._make(source, path)
        return path

    def _make(self, source, path):
        with open_image(source) as image:
            image.draft("RGB", (self.size, self.size))  # JPEG decodes at a reduced scale: much faster
            image = to_rgb(image)
            image.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        # Two requests may make the same thumbnail at once: each writes its own temporary file
        # and the last rename wins, with identical content.
        with atomic_path(path, suffix=".jpg") as tmp:
            image.save(tmp, "JPEG", quality=self.quality, optimize=True)


def writable_folder(folder=config.THUMBNAILS_DIR):
    """``folder`` if thumbnails can be written there, else a new folder of this process's own under the
    temporary folder: the gallery also serves a project it may only read (a container's read-only mount)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return Path(folder)
    except OSError:
        return Path(tempfile.mkdtemp(prefix="shoplens-thumbnails-"))
