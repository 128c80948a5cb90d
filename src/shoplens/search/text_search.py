"""Text search: what a query's words say about titles, attributes and category, scored from 0 to 1.

A query is read in three parts (:meth:`TextSearch.read`):

* words that name a value of one of the catalog's attributes ("blue", "men",
  "summer", "navy blue") ask for that value: products that have it score on the
  *attributes* part. Words are stemmed as titles are, so "shoes" and "shoe", or
  "Women" and "women's", are one word;
* the other words score against the titles with BM25 (``bm25s``), divided by the
  best title's score, on the *title* part;
* the text model's probability that the query names each product's category path
  is the *category* part: it lets "running shoes" find sports shoes whose titles
  say "trainers".

A product's score is the weighted mean of the parts the query has
(``TEXT_SEARCH_WEIGHTS``). Only products that match a title word or an attribute
are results: a sure category alone never pads the list, and a query of unknown
words has no results. A word found in neither titles nor attributes is read as the
known word it most likely meant, when one is close enough (``SPELLING_CUTOFF``),
and the reading says so.
"""
import collections
import difflib

import numpy as np
from nltk.metrics.distance import edit_distance

from shoplens import config
from shoplens.data.clean_titles import TitleCleaner


class TextSearch:
    """Scores every product of a repository for a text query.

    Parameters
    ----------
    titles, clean_titles : sequence of str
        The products' titles, and as make_dataset cleaned them.
    fields : shoplens.search.filters.Fields
        The products' fields; attribute values are read out of queries.
    language : str
        Language of the titles: queries are cleaned and stemmed as the titles were.
    weights : dict
        Weight of the ``title``, ``attributes`` and ``category`` parts.
    """

    def __init__(self, titles, clean_titles, fields, language=config.LANGUAGE, weights=config.TEXT_SEARCH_WEIGHTS):
        import bm25s

        self.fields = fields
        self.weights = dict(weights)
        self.cleaner = TitleCleaner(language)
        self.title_words = [set(title.split()) for title in clean_titles]
        self.bm25 = bm25s.BM25()
        # A catalog without titles still gets an index, of one empty word, so every query scores 0.
        self.bm25.index([title.split() or [""] for title in clean_titles], show_progress=False)
        # Every attribute value, by its stemmed words: ("navi", "blue") -> {"colour": [code of "Navy Blue"]}. A value
        # that lost a stop word ("Off White" -> "white") is read only where no value is exactly those words.
        exact, partial = {}, {}
        for field in fields.attributes:
            for code, value in enumerate(fields.codes[field][1]):
                words = tuple(self.cleaner(str(value)).split())
                if words:  # years and other numbers have none
                    kept = exact if len(words) == len(str(value).split()) else partial
                    kept.setdefault(words, {}).setdefault(field, []).append(code)
        self.phrases = {words: {**partial.get(words, {}), **exact.get(words, {})} for words in {*exact, *partial}}
        self._having = {field: _rows_by_code(*fields.codes[field]) for field in fields.attributes}
        self.longest_phrase = max(map(len, self.phrases), default=0)
        self.vocabulary = set().union(*self.title_words, *self.phrases)
        # Misspellings are corrected against the words as titles and values spell them, each counted once per
        # product that has it: of the close words the commonest wins ("woemn": women, not woven).
        self._spellings = collections.Counter(w for title in titles for w in set(self.cleaner.words(str(title))))
        for field in fields.attributes:
            codes, values = fields.codes[field]
            for value, count in zip(values, np.bincount(codes, minlength=len(values))):
                self._spellings.update(dict.fromkeys(self.cleaner.words(str(value)), int(count)))
        # Stems are compared too ("tshrits" is closer to "tshirt" as a stem), each spelt as its commonest word.
        stems = {}
        for word, _ in self._spellings.most_common():
            stems.setdefault(self.cleaner.stem(word), word)
        self._spelt = {"word": {w: w for w in self._spellings}, "stem": stems}  # what is compared -> the word

    def read(self, query):
        """What a query asks for.

        Returns
        -------
        dict
            ``words``: stemmed words scored against titles; ``typed``: the query's word for
            each stem (the known word, where it was misspelt); ``attributes``: ``{field: [values]}`` named by the query;
            ``corrections``: ``{typed word: the known word read instead}``; ``unknown``: words
            neither titles nor attributes have; ``clean``: the corrected, cleaned query for
            the text model (empty when no word is known).
        """
        stems, typed, corrections, unknown = [], {}, {}, []
        for word in str(query).split():
            for spelt in self.cleaner.words(word):
                stem = self.cleaner.stem(spelt)
                if stem in self.vocabulary:
                    typed.setdefault(stem, word)
                else:
                    known = self._closest(spelt)
                    if known is None:
                        unknown.append(word)
                        continue
                    corrections[word] = known
                    stem = self.cleaner.stem(known)
                    typed.setdefault(stem, known)
                stems.append(stem)
        attributes, words, i = {}, [], 0
        while i < len(stems):
            for n in range(min(self.longest_phrase, len(stems) - i), 0, -1):
                named = self.phrases.get(tuple(stems[i:i + n]))
                if named:
                    for field, codes in named.items():
                        attributes.setdefault(field, []).extend(c for c in codes if c not in attributes.get(field, []))
                    i += n
                    break
            else:
                words.append(stems[i])
                i += 1
        for word, known in corrections.items():
            named = self.phrases.get((self.cleaner.stem(known),))
            if named:  # say the value, not its stem: "bleu" is read as "Blue"
                field, codes = next(iter(named.items()))
                corrections[word] = str(self.fields.codes[field][1][codes[0]])
        return {"words": words, "typed": typed, "corrections": corrections, "unknown": unknown,
                "attributes": {field: [str(self.fields.codes[field][1][c]) for c in codes]
                               for field, codes in attributes.items()},
                "attribute_codes": attributes, "clean": " ".join(stems)}

    def _closest(self, spelt):
        """The known word a misspelt one most likely meant (as a word or as a stem); ``None`` if none is close.

        As a noisy-channel speller does: of the words similar enough (difflib ratio ``SPELLING_CUTOFF``), those
        fewest edits away (swapping two letters is one), and of those the commonest. "tshrits" is one edit from
        "tshirt" and from "shrit", one title's typo, but far more titles say "tshirt"; "wmoen" is one edit from
        "women" and two from the commoner "men".
        """
        if len(spelt) < config.SPELLING_MIN_LENGTH:
            return None
        edits = {}
        for typed, spellings in ((spelt, self._spelt["word"]), (self.cleaner.stem(spelt), self._spelt["stem"])):
            for close in difflib.get_close_matches(typed, spellings, n=10, cutoff=config.SPELLING_CUTOFF):
                distance = edit_distance(typed, close, transpositions=True)
                edits[spellings[close]] = min(edits.get(spellings[close], distance), distance)
        return min(sorted(edits), key=lambda w: (edits[w], -self._spellings[w]), default=None)

    def score(self, reading, category_probs=None, mask=None):
        """The products that match a reading of :meth:`read`, and their scores from 0 to 1.

        Only products with a title word or an attribute value of the query are scored, so a query costs what
        its matches cost, not what the catalog does.

        Parameters
        ----------
        reading : dict
            A query as :meth:`read` returned it.
        category_probs : ndarray, optional
            ``(n_products,)``: the text model's probability of each product's category path.
        mask : ndarray of bool, optional
            The products that may be results (filters and category).

        Returns
        -------
        rows : ndarray of int
            The matching products that the mask lets through, in row order.
        scores : ndarray of float32
            Their scores, each above 0.
        parts : dict
            Each part's scores of ``rows``, for :meth:`explain`.
        """
        title = None
        having = {field: np.concatenate([self._having[field][code] for code in codes])  # each field's matches
                  for field, codes in reading["attribute_codes"].items()}
        matches = list(having.values())
        if reading["words"]:
            title = np.asarray(self.bm25.get_scores(reading["words"]), dtype=np.float32)
            matches.append(np.flatnonzero(title))
        rows = np.unique(np.concatenate(matches)) if matches else np.zeros(0, dtype=np.int64)
        parts = {}
        if title is not None:
            parts["title"] = title[rows]
        if having:
            hits = np.zeros(len(rows), dtype=np.float32)
            for found in having.values():  # a product has one value of a field: counted once per field
                hits[np.searchsorted(rows, found)] += 1
            parts["attributes"] = hits / len(having)
        if mask is not None:
            keep = mask[rows]
            rows, parts = rows[keep], {name: part[keep] for name, part in parts.items()}
        if "title" in parts:
            best = parts["title"].max(initial=0.0)
            if best > 0:
                parts["title"] /= best
        if category_probs is not None and parts:
            parts["category"] = np.asarray(category_probs, dtype=np.float32)[rows]
        total = sum(self.weights[name] for name in parts)
        scores = np.zeros(len(rows), dtype=np.float32)
        for name, part in parts.items():
            scores += np.float32(self.weights[name] / total) * part
        return rows, scores, parts

    def explain(self, rows, reading, parts, categories=None):
        """Why each product of ``rows`` matched, in a few words: ``[["title: running, shoes", "colour: Blue", ...],
        ...]``, one list per row; ``parts`` are the rows' scores of each part, as :meth:`score` gives them for its
        rows, and ``categories`` the rows' category paths, for the text model's part."""
        rows = list(rows)
        why = [[] for _ in rows]
        if "title" in parts:
            words = [(w, reading["typed"][w]) for w in dict.fromkeys(reading["words"])]
            for found, row, title in zip(why, rows, parts["title"].tolist()):
                if title > 0:
                    found.append("title: " + ", ".join(typed for w, typed in words if w in self.title_words[row]))
        for field, wanted in reading["attribute_codes"].items():
            codes, names = self.fields.codes[field]
            for found, code in zip(why, codes[rows].tolist()):
                if code in wanted:
                    found.append(f"{field}: {names[code]}")
        if "category" in parts and categories is not None:
            for found, category, probability in zip(why, categories, parts["category"].tolist()):
                found.append(f"{category.split(config.CATEGORY_SEP)[-1]}: {probability:.0%} by the text model")
        return why


def describe_reading(reading):
    """One line on how a text query was read: title words, attribute values, corrections, category."""
    parts = [f"titles: {' '.join(reading['words'])}"] if reading["words"] else []
    parts += [f"{field}: {' or '.join(values)}" for field, values in reading["attributes"].items()]
    parts += [f"'{typed}' read as '{known}'" for typed, known in reading["corrections"].items()]
    if reading["unknown"]:
        parts.append("no product has " + ", ".join(f"'{w}'" for w in reading["unknown"]))
    if reading.get("prediction"):
        parts.append(f"reads as {reading['prediction']['category']} ({reading['prediction']['probability']:.0%})")
    return "; ".join(parts)


def _rows_by_code(codes, values):
    """The products having each value: one array of rows per value code."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(values) + 1))
    return [order[start:end] for start, end in zip(bounds[:-1], bounds[1:])]
