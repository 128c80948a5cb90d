"""Cleaning noisy product titles into stemmed tokens.

``"Nike Men's Blue T-Shirts (2 Pack)"`` becomes ``"nike men blue tshirt pack"``:
lower case, hyphens and apostrophes inside words joined (so "T-Shirts" stays
one word and is not confused with "Shirts"), digits and punctuation dropped,
stop words dropped, every word Snowball-stemmed.
"""
import functools
import re
from importlib import resources

from nltk.stem.snowball import SnowballStemmer

from shoplens import ShoplensError

_JOINERS = re.compile(r"(?<=\w)['’\-](?=\w)")
_NOT_LETTERS = re.compile(r"[\W\d_]+")


def supported_languages():
    """Languages with both a Snowball stemmer and a shipped stop word list."""
    shipped = {p.name[:-4] for p in resources.files("shoplens.data").joinpath("stopwords").iterdir()
               if p.name.endswith(".txt")}
    return sorted(shipped & set(SnowballStemmer.languages))


class TitleCleaner:
    """Turn raw titles into space-separated stemmed tokens.

    Parameters
    ----------
    language : str
        A Snowball language with a stop word list, e.g. ``"english"`` or ``"german"``.
    """

    def __init__(self, language="english"):
        if language not in supported_languages():
            raise ShoplensError(
                f"unknown language '{language}' (supported: {', '.join(supported_languages())})"
            )
        self.language = language
        words = resources.files("shoplens.data").joinpath("stopwords", f"{language}.txt").read_text("utf-8")
        # Stop words are matched after punctuation is dropped, as the titles' words are.
        self.stop_words = {w for line in words.split() for w in _NOT_LETTERS.split(_JOINERS.sub("", line)) if w}
        # Catalog titles repeat the same few thousand words: stem each only once.
        self.stem = functools.lru_cache(maxsize=None)(SnowballStemmer(language).stem)

    def __call__(self, title):
        """Clean one title; returns ``""`` when no word is left."""
        return " ".join(self.stem(w) for w in self.words(title))

    def words(self, title):
        """The words of a title that cleaning keeps, lower case and not yet stemmed."""
        text = _JOINERS.sub("", title.lower())
        return [w for w in _NOT_LETTERS.split(text) if w and w not in self.stop_words]
