"""Cosine k-nearest-neighbour indexes over L2-normalised embeddings.

Two kinds, one interface (``search(queries, k, allowed=None) -> (scores, ids)`` and
``vectors_of(rows)``):

* :class:`ExactIndex`: a float32 matrix product and ``argpartition``; exact, no
  memory beyond the embeddings themselves, and fast enough up to a few hundred
  thousand items. With ``INDEX_PRECISION=int8``, :class:`Int8Index` scans the
  vectors at a quarter of the bytes instead, and scores its best candidates again in
  float32;
* :class:`FaissIndex`: a FAISS inverted-file index (``IndexIVFFlat``, inner
  product). It scans only the ``nprobe`` lists whose centroids are nearest the
  query, so a query costs a fraction of a full scan. The centroids are found
  through a small HNSW graph over them, which costs a fraction of scanning them
  all. k-means training takes minutes on a million vectors on a few cores, far
  less than an HNSW graph over the vectors themselves.

``INDEX=auto`` picks FAISS from ``INDEX_FAISS_THRESHOLD`` items on. An index is
published as the folder ``models/search_index/``: ``search_index.json`` (its
kind, options and the fingerprint of the embeddings it was built from), plus
``search_index.faiss`` for FAISS and int8 (with ``search_index.float32.npy``, the
vectors it rescores with); the float32 exact index is the embeddings themselves.
"""
import contextlib
import json
import math
import os
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from shoplens import ShoplensError, config
from shoplens.outputs import publish, write_json
from shoplens.pipeline import index_dir, index_key
from shoplens.stages import version_of

KINDS = ("auto", "exact", "faiss")
PRECISIONS = ("float32", "int8")


class ExactIndex:
    """Exact cosine search: every query against every vector.

    Parameters
    ----------
    vectors : array of shape (n, dim)
        Unit-length embeddings; kept as they are (no copy) when already float32.
    """

    kind = "exact"
    precision = "float32"

    def __init__(self, vectors):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def __len__(self):
        return len(self.vectors)

    def search(self, queries, k, allowed=None, batch_size=None):
        """The ``k`` most similar vectors of each query.

        Parameters
        ----------
        queries : array of shape (m, dim)
            Unit-length query vectors.
        k : int
            Neighbours per query.
        allowed : array of bool, shape (n,), optional
            Only these vectors may be returned (filters, a split, all but the query item).
        batch_size : int, optional
            Queries scored at once; by default as many as keep the ``(batch_size, n)`` score matrix
            near 128 MB.

        Returns
        -------
        scores : array of shape (m, k)
            Cosine similarities, best first; ``-inf`` where fewer than ``k`` vectors are allowed.
        ids : array of shape (m, k)
            Row numbers of the neighbours; ``-1`` where fewer than ``k`` vectors are allowed.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        rows, vectors = None, self.vectors
        if allowed is not None:
            rows = np.flatnonzero(allowed)
            if len(rows) < len(self.vectors) // 2:
                vectors = self.vectors[rows]  # a narrow filter: gathering its rows beats scoring them all
        found = min(k, len(self.vectors) if rows is None else len(rows))
        batch_size = batch_size or max(1, min(1024, 2**25 // max(len(vectors), 1)))
        scores, ids = _empty(len(queries), k)
        for i in range(0, len(queries), batch_size):
            # One query is a matrix-vector product, which reads the vectors once: memory speed is the limit.
            block = (vectors @ queries[i])[None] if len(queries) == 1 else queries[i:i + batch_size] @ vectors.T
            if rows is not None and vectors is self.vectors:
                block[:, ~allowed] = -np.inf
            top = top_k(block, found)
            scores[i:i + batch_size, :found] = np.take_along_axis(block, top, axis=1)
            ids[i:i + batch_size, :found] = top if vectors is self.vectors else rows[top]
        return scores, ids

    def vectors_of(self, rows):
        """The vectors of rows ``rows``, float32."""
        return self.vectors[rows]


class Int8Index:
    """Exact cosine search that scans the vectors as int8: a quarter of the memory of :class:`ExactIndex`.

    A query reads every vector, so memory speed bounds it: FAISS's scalar quantizer (``QT_8bit_uniform``,
    one range for every dimension) scans a byte per dimension instead of four. Rounding to 256 levels moves
    a cosine by about 1e-3, more than separates the 10th and 11th neighbours of a catalog's near-duplicate
    photos, so the best ``RESCORED * k`` of the scan are scored again against the float32 vectors. Those stay
    on disk and are read row by row (``pread``, through the operating system's file cache, not this
    process's memory): the results and their scores are float32's, unless a true neighbour ranked below
    ``RESCORED * k`` in the scan (``make benchmark-search`` measures recall@10 against float32).

    Parameters
    ----------
    index : faiss.IndexScalarQuantizer
        A trained, filled ``QT_8bit_uniform`` index with the inner-product metric.
    exact : array or VectorFile of shape (n, dim)
        The same vectors, float32, indexed by rows.
    """

    kind = "exact"
    precision = "int8"
    RESCORED = 4

    def __init__(self, index, exact):
        self.index = index
        self.exact = exact

    def __len__(self):
        return self.index.ntotal

    @classmethod
    def build(cls, vectors):
        """Quantize ``vectors`` (unit-length, ``(n, dim)``) to int8, keeping the float32 ones to rescore."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexScalarQuantizer(vectors.shape[1], faiss.ScalarQuantizer.QT_8bit_uniform,
                                           faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)  # the range of the values: one pass
        index.add(vectors)
        return cls(index, vectors)

    def search(self, queries, k, allowed=None):
        """Like :meth:`ExactIndex.search`: the int8 scan's best candidates, scored in float32."""
        import faiss

        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        params, _bits = _selection(faiss.SearchParameters, allowed)
        with _threads(1 if len(queries) == 1 else None):
            _, candidates = self.index.search(queries, min(self.RESCORED * k, len(self)), params=params)
        vectors = self.exact[np.maximum(candidates, 0).ravel()].reshape(*candidates.shape, -1)
        rescored = np.einsum("qcd,qd->qc", vectors, queries)
        rescored[candidates < 0] = -np.inf
        top = top_k(rescored, min(k, candidates.shape[1]))
        scores, ids = _empty(len(queries), k)
        scores[:, :top.shape[1]] = np.take_along_axis(rescored, top, axis=1)
        ids[:, :top.shape[1]] = np.take_along_axis(candidates, top, axis=1)
        ids[np.isinf(scores)] = -1
        return scores, ids

    def vectors_of(self, rows):
        """The vectors of rows ``rows``, float32."""
        return self.exact[np.asarray(rows, dtype=np.int64)]


class VectorFile:
    """The rows of a float32 ``.npy`` matrix, read from disk when asked for, without mapping the file.

    ``vector_file[rows]`` reads each row with ``os.pread``, which several threads may call at once.
    """

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, "rb") as file:
            version = np.lib.format.read_magic(file)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = header(file)
            self.offset = file.tell()
        if len(shape) != 2 or fortran or dtype != np.float32:
            raise ShoplensError(f"{self.path}: not a float32 matrix; run `make index`")
        self.shape = shape
        self.row_bytes = shape[1] * 4
        self.fd = os.open(self.path, os.O_RDONLY)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        rows = np.atleast_1d(rows)
        data = b"".join(os.pread(self.fd, self.row_bytes, self.offset + int(row) * self.row_bytes) for row in rows)
        return np.frombuffer(data, dtype=np.float32).reshape(len(rows), self.shape[1])

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


class FaissIndex:
    """Approximate cosine search with a FAISS inverted-file index.

    Parameters
    ----------
    index : faiss.IndexIVFFlat
        A trained, filled index with the inner-product metric.
    nprobe : int
        Inverted lists scanned per query.
    vectors : array of shape (n, dim), optional
        The same embeddings, for exact answers where a filter leaves the probed
        lists with fewer than ``k`` allowed vectors.
    """

    kind = "faiss"
    precision = "float32"

    def __init__(self, index, nprobe=config.FAISS_NPROBE, vectors=None):
        self.index = index
        self.nprobe = max(1, min(int(nprobe), index.nlist))
        self.vectors = vectors

    def __len__(self):
        return self.index.ntotal

    @classmethod
    def build(cls, vectors, nlist=config.FAISS_NLIST, nprobe=config.FAISS_NPROBE, seed=config.SEED):
        """Train the coarse quantizer (k-means on a sample) and add every vector."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        nlist = int(nlist or default_nlist(n))
        # k-means wants about 40 training points per list; more only makes training slower.
        sample = np.random.default_rng(seed).choice(n, min(n, 40 * nlist), replace=False)
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors[np.sort(sample)])
        # Each vector goes to its nearest centroid: a wide search of the centroid graph, or a few land in
        # a list that queries near them never probe.
        quantizer.hnsw.efSearch = 128
        index.add(vectors)
        return cls(index, nprobe, vectors)

    def search(self, queries, k, allowed=None):
        """Like :meth:`ExactIndex.search`, approximately: the best ``k`` among the probed lists."""
        import faiss

        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        # The centroid graph is searched wider than nprobe, so it rarely misses one of the nearest lists.
        centroids = faiss.SearchParametersHNSW(efSearch=max(64, 2 * self.nprobe))
        params, _bits = _selection(faiss.SearchParametersIVF, allowed, nprobe=self.nprobe,
                                   quantizer_params=centroids)
        with _threads(1 if len(queries) == 1 else None):
            scores, ids = self.index.search(queries, k, params=params)
        if allowed is not None and self.vectors is not None:
            # A narrow filter can leave the probed lists short of k allowed items: answer those exactly.
            short = np.flatnonzero((ids < 0).any(axis=1))
            if len(short) and allowed.sum() > (ids[short] >= 0).sum(axis=1).min():
                scores[short], ids[short] = ExactIndex(self.vectors).search(queries[short], k, allowed)
        scores[ids < 0] = -np.inf
        return scores, ids

    def vectors_of(self, rows):
        """The vectors of rows ``rows``, float32."""
        return self.vectors[rows]


@contextlib.contextmanager
def _threads(n):
    """FAISS's OpenMP threads in this thread: ``n``, or as many as it has (``None``).

    One query is scanned in the thread that asked: a server answers queries in its own threads, and idle
    OpenMP workers spin, taking the CPUs those threads need. OpenMP keeps the setting per thread.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n or before)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _selection(parameters, allowed, **options):
    """FAISS search parameters that admit only the ``allowed`` rows, and the bitmap they point to.

    FAISS reads the bitmap through a raw pointer: the caller keeps the returned array alive while searching.
    """
    import faiss

    params = parameters(**options)
    bits = None
    if allowed is not None:
        bits = np.packbits(np.asarray(allowed, dtype=bool), bitorder="little")
        params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
    return params, bits


def default_nlist(n):
    """Inverted lists for ``n`` vectors: 4 x sqrt(n), with at least 39 training points per list."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def choose_kind(n, kind=config.INDEX, threshold=config.INDEX_FAISS_THRESHOLD):
    """``exact`` or ``faiss`` for ``n`` items: as asked, or by size when ``kind`` is ``auto``."""
    if kind not in KINDS:
        raise ShoplensError(f"unknown INDEX '{kind}' (choose from {', '.join(KINDS)})")
    if kind == "auto":
        return "faiss" if n >= threshold else "exact"
    return kind


def build_index(vectors, kind=config.INDEX, threshold=config.INDEX_FAISS_THRESHOLD, nlist=config.FAISS_NLIST,
                nprobe=config.FAISS_NPROBE, precision=config.INDEX_PRECISION):
    """A :class:`FaissIndex`, or an exact one (:class:`ExactIndex`, :class:`Int8Index` by ``precision``),
    over ``vectors``, chosen by :func:`choose_kind`."""
    if precision not in PRECISIONS:
        raise ShoplensError(f"unknown INDEX_PRECISION '{precision}' (choose from {', '.join(PRECISIONS)})")
    if choose_kind(len(vectors), kind, threshold) == "faiss":
        return FaissIndex.build(vectors, nlist, nprobe)
    return Int8Index.build(vectors) if precision == "int8" else ExactIndex(vectors)


def save_index(index, fingerprint, path=config.SEARCH_INDEX, seconds=None):
    """Write ``path`` (JSON: kind, options, fingerprint) and, for FAISS, the index beside it; return the JSON."""
    path = Path(path)
    info = {"kind": index.kind, "items": len(index), "fingerprint": fingerprint,
            "created": datetime.now().isoformat(timespec="seconds")}
    if seconds is not None:
        info["build_seconds"] = round(seconds, 2)
    if index.kind == "exact":
        info["precision"] = index.precision
    else:
        info.update(nlist=index.index.nlist, nprobe=index.nprobe)
    if hasattr(index, "index"):  # a FAISS index: the file beside the JSON
        import faiss

        info["file"] = path.with_suffix(".faiss").name
        faiss.write_index(index.index, str(path.with_suffix(".faiss")))
    if index.kind == "exact" and info["precision"] == "int8":
        info["rescoring_file"] = path.with_suffix(".float32.npy").name
        np.save(path.with_suffix(".float32.npy"), index.vectors_of(np.arange(len(index))))
    write_json(info, path)
    return info


def load_index(vectors, fingerprint, path=config.SEARCH_INDEX, features_path=config.EXTRACTED_FEATURES):
    """Reload the index saved at ``path``, refusing one built from other embeddings than ``vectors``."""
    path = Path(path)
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make index`")
    try:
        info = json.loads(path.read_text())
        kind = info["kind"]
    except (ValueError, KeyError):
        raise ShoplensError(f"{path}: not a search index description; run `make index`") from None
    if info.get("fingerprint") != fingerprint or info.get("items") != len(vectors):
        raise ShoplensError(f"{path}: built from other embeddings than {features_path}; run `make index`")
    if kind == "exact" and info.get("precision", "float32") == "float32":
        return ExactIndex(vectors)
    if kind not in ("exact", "faiss"):
        raise ShoplensError(f"{path}: unknown index kind '{kind}'; run `make index`")
    import faiss

    file = path.with_name(info.get("file", path.with_suffix(".faiss").name))
    if not file.is_file():
        raise ShoplensError(f"{file}: not found; run `make index`")
    try:
        index = faiss.read_index(str(file))
    except RuntimeError as err:
        raise ShoplensError(f"{file}: cannot read ({str(err).strip().splitlines()[0]}); run `make index`") from None
    if index.ntotal != len(vectors):
        raise ShoplensError(f"{file}: built from other embeddings than {features_path}; run `make index`")
    if kind == "exact":
        exact = path.with_name(info.get("rescoring_file", path.with_suffix(".float32.npy").name))
        if not exact.is_file():
            raise ShoplensError(f"{exact}: not found; run `make index`")
        return Int8Index(index, VectorFile(exact))
    return FaissIndex(index, info.get("nprobe", config.FAISS_NPROBE), vectors)


def index_for(features, kind=config.INDEX, threshold=config.INDEX_FAISS_THRESHOLD,
              precision=config.INDEX_PRECISION, models_dir=config.MODELS_DIR):
    """Build the index of an extracted-features dict and publish it in ``models/search_index/``; return its JSON."""
    key = index_key(kind, threshold, precision, models_dir)
    started = time.perf_counter()
    index = build_index(features["embeddings"], kind, threshold, precision=precision)
    with publish(index_dir(models_dir), "index", key, version_of(key)) as staging:
        return save_index(index, str(features["fingerprint"]), staging / config.SEARCH_INDEX.name,
                          time.perf_counter() - started)


def _empty(m, k):
    return np.full((m, k), -np.inf, dtype=np.float32), np.full((m, k), -1, dtype=np.int64)


def top_k(scores, k):
    """Column indices of each row's ``k`` largest scores, largest first."""
    if k <= 0:
        return np.zeros((len(scores), 0), dtype=np.int64)
    if k < scores.shape[1]:
        # The k smallest of the negated scores, not the k largest of the scores: the same selection, but numpy's
        # is over 10x faster this way round on scores that are mostly one value (text scores of 0, rows a
        # filter left out at -inf), and as fast on distinct ones.
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    rows = np.arange(len(scores))[:, None]
    return part[rows, np.argsort(-scores[rows, part], axis=1, kind="stable")]
