"""The web gallery: server-rendered pages to browse, search and classify products, and their JSON API.

Pages

* ``/``: a grid of products with filters (each category level and attribute), paging and text search
  (``q``); a photo dropped or chosen there is classified through the API, with its most similar products.
* ``/item/<id>``: one product, its details and its similar products.
* ``/audit``: products likely filed under a wrong category, and duplicate groups (``make audit``),
  filtered by ``category``.
* ``/thumb/<id>``, ``/image/<id>``: a product's thumbnail and image, from the catalog's image folder only.

JSON API (errors are ``{"error": "..."}`` with the status)

* ``GET /api/items?page=&page_size=&category=&<filter>=``: products, a page at a time, with the facet
  counts under those filters (a filter named twice takes either value);
* ``GET /api/search?q=&k=&category=&<filter>=``: text search: how the query was ``reading``, the text model's
  ``prediction`` of its category, and results with their ``score`` (0 to 1) and ``why``;
* ``POST /api/classify``: multipart ``image`` and/or ``title`` (with ``k``, ``same_category``): the ``prediction``,
  the ``similar`` products and, for an image, its ``crop`` (``{"box": [x0, y0, x1, y1], "width", "height"}`` in
  pixels of the photo where the embeddings are of crops, ``CROP=auto``; else ``null``);
* ``GET /api/similar/<id>?k=``: the products most like one;
* ``GET /api/audit?category=&limit=``: what ``/audit`` shows (404 until ``make audit`` ran);
* ``GET /api/facets?category=&<filter>=``, ``GET /api/health``.
"""
import io
import json
import logging
import math
import re
from pathlib import Path
from urllib.parse import quote

from flask import Flask, jsonify, render_template, request, send_file, url_for
from PIL import Image
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, RequestEntityTooLarge

from shoplens import ShoplensError, config
from shoplens.audit.audit import load_audit
from shoplens.data.images import ImageTooLargeError, open_image
from shoplens.gallery.thumbnails import Thumbnails, writable_folder
from shoplens.search.repository import NotFoundError

log = logging.getLogger(__name__)

# Query parameters of the page with a meaning of their own; every other one names a filter.
PAGE_OPTIONS = {"q", "page", "category"}


def create_app(repository, image_dir=None, thumbnails=None, page_size=config.PAGE_SIZE, k=config.GALLERY_K,
               max_upload_mb=config.MAX_UPLOAD_MB, cache_max_age=config.STATIC_MAX_AGE, reports_dir=config.REPORTS_DIR):
    """Make the gallery's Flask application around a loaded search repository.

    Parameters
    ----------
    repository : shoplens.search.repository.Repository
        The catalog, models, embeddings and index, loaded once.
    image_dir : path, optional
        The catalog's image folder: no file outside it is ever served
        [default: the ``image_dir`` of ``data/processed/summary.json``; without one, no images].
    thumbnails : Thumbnails, optional
        The thumbnail cache [default: ``config.THUMBNAILS_DIR``, or a temporary folder where the project
        cannot be written].
    page_size : int
        Products per page of the gallery and default page size of ``/api/items``.
    k : int
        Similar products shown for a photo or a product, and the API's default ``k``.
    max_upload_mb : float
        Largest upload; a bigger request is answered 413.
    cache_max_age : int
        Seconds browsers may keep images, thumbnails and static files.
    reports_dir : path
        Where the catalog's audit is read from, ``<reports_dir>/<catalog>/audit``.
    """
    if not 1 <= page_size <= config.MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be from 1 to {config.MAX_PAGE_SIZE}, got {page_size}")
    if not 1 <= k <= config.MAX_K:
        raise ValueError(f"k must be from 1 to {config.MAX_K}, got {k}")
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=int(max_upload_mb * 2**20), SEND_FILE_MAX_AGE_DEFAULT=cache_max_age)
    app.json.sort_keys = False  # category levels keep their order, top level first
    thumbnails = thumbnails or Thumbnails(writable_folder())
    image_dir = image_dir or catalog_image_dir()
    image_dir = Path(image_dir).resolve() if image_dir else None
    facets = repository.facets()
    audit = load_audit(repository.catalog_name, reports_dir)  # None until `make audit` has run
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["thousands"] = "{:,}".format

    def public(item):
        """A product as the page and the API show it: its URLs instead of server paths."""
        # Formatted rather than url_for'd: three URLs per product were half the cost of an API call.
        key, root = quote(item["id"], safe=""), request.script_root
        out = {"id": item["id"], "title": item["title"], "category": item["category"], "levels": item["levels"],
               "attributes": {name: value for name, value in item["attributes"].items() if value},
               "url": f"{root}/item/{key}", "thumbnail": f"{root}/thumb/{key}", "image": f"{root}/image/{key}"}
        for key in ("score", "why"):
            if key in item:
                out[key] = item[key]
        return out

    def image_file(item_id):
        """The image file of a product, only if it lies inside the catalog's image folder."""
        item = _call(repository.item, item_id)
        path = Path(item["image_path"]) if item["image_path"] else None
        if path is None or image_dir is None or not inside(path, image_dir) or not path.is_file():
            raise NotFound(f"product {item_id} has no image")
        return path.resolve()

    # Static files may be cached for a day: their URLs change whenever one of them does.
    static_version = max(int(f.stat().st_mtime) for f in Path(app.static_folder).iterdir())

    @app.context_processor
    def globals_():
        return {"total_items": len(repository), "static_version": static_version}

    # pages

    @app.get("/")
    def index():
        filters = _filters(request.args, facets, PAGE_OPTIONS, strict=False)
        category = request.args.get("category") or None
        query = request.args.get("q", "").strip()
        page = _int_arg("page", 1, 1)
        reading = None
        if query:
            # A text search shows its best page_size products, ranked; paging is for browsing.
            reading, items = _call(repository.search_text, query, k=min(page_size, len(repository)),
                                   filters=filters, category=category)
            total, pages = len(items), 1
        else:
            total, items = _call(repository.browse, filters, category, offset=(page - 1) * page_size,
                                 limit=page_size)
            pages = max(1, math.ceil(total / page_size))

        def page_url(number):
            return url_for("index", **{**request.args.to_dict(), "page": number})

        active = [(name, value) for name, values in filters.items()
                  for value in ([values] if isinstance(values, str) else values)]
        active += [("category", category)] if category else []
        counts = _call(repository.facets, filters, category)
        return render_template("index.html", facets=counts, filters=filters, category=category, active=active,
                               query=query, reading=reading, items=[public(i) for i in items], total=total,
                               page=page, pages=pages, page_url=page_url)

    @app.get("/item/<item_id>")
    def item_page(item_id):
        item = public(_call(repository.item, item_id))
        others = min(k, len(repository) - 1)
        similar = [public(i) for i in _call(repository.similar_to_item, item_id, k=others)] if others else []
        crumbs, so_far = {}, {}
        for name, value in item["levels"].items():
            so_far = {**so_far, name: value}
            crumbs[name] = so_far
        return render_template("item.html", item=item, similar=similar, crumbs=crumbs)

    def audit_listing(args, options):
        """The audit's flagged products and duplicate groups under ``category``, ``limit`` of each."""
        if audit is None:
            raise NotFound("this catalog has not been audited yet; run `make audit`")
        _filters(args, {}, options)
        summary, issues, duplicates = audit
        category = args.get("category", "")
        limit = _int_arg("limit", page_size, 1, config.MAX_PAGE_SIZE, args)
        if category:
            issues = issues[issues["category"].str.startswith(category)
                            | issues["suggested_path"].str.startswith(category)]
            groups = duplicates.loc[duplicates["category"].str.startswith(category), "group"]
            duplicates = duplicates[duplicates["group"].isin(groups)]

        def product(row):
            key = quote(row["id"], safe="")
            return {"id": row["id"], "title": row.get("title", ""), "category": row["category"],
                    "split": row.get("split"), "url": f"{request.script_root}/item/{key}",
                    "thumbnail": f"{request.script_root}/thumb/{key}"}

        flagged = [{**product(row), **{name: row[name] for name in ("level", "given", "suggested", "suggested_path")},
                    "given_probability": float(row["given_probability"]),
                    "suggested_probability": float(row["suggested_probability"])}
                   for row in issues.head(limit).to_dict("records")]
        names = list(dict.fromkeys(duplicates["group"]))
        groups = []
        for name in names[:limit]:
            members = duplicates[duplicates["group"] == name].to_dict("records")
            groups.append({"group": name, "kind": members[0]["kind"], "size": len(members),
                           "categories_disagree": bool(members[0]["categories_disagree"]),
                           "items": [product(row) for row in members]})
        return {"summary": summary, "category": category, "limit": limit,
                "label_issues": {"total": len(issues), "items": flagged},
                "duplicates": {"total": len(names), "groups": groups}}

    @app.get("/audit")
    def audit_page():
        if audit is None:
            return render_template("audit.html", listing=None)
        # The filter's choices: the first two levels of every path the audit names.
        paths = set(audit[1]["category"]) | set(audit[2]["category"])
        categories = sorted({config.CATEGORY_SEP.join(path.split(config.CATEGORY_SEP)[:depth])
                             for path in paths for depth in (1, 2)})
        return render_template("audit.html", listing=audit_listing(request.args, {"category", "limit"}),
                               categories=categories, category=request.args.get("category", ""))

    @app.get("/thumb/<item_id>")
    def thumbnail(item_id):
        try:
            path = thumbnails.get(image_file(item_id))
        except (OSError, ImageTooLargeError):
            raise NotFound(f"product {item_id}: its image cannot be read") from None
        return send_file(path, mimetype="image/jpeg", max_age=cache_max_age)

    @app.get("/image/<item_id>")
    def image(item_id):
        return send_file(image_file(item_id), max_age=cache_max_age)

    # JSON API

    @app.get("/api/health")
    def health():
        return jsonify(status="ok", items=len(repository))

    @app.get("/api/facets")
    def api_facets():
        filters = _filters(request.args, facets, {"category"})
        return jsonify(facets=_call(repository.facets, filters, request.args.get("category") or None))

    @app.get("/api/items")
    def api_items():
        filters = _filters(request.args, facets, {"page", "page_size", "category"})
        page = _int_arg("page", 1, 1)
        size = _int_arg("page_size", page_size, 1, config.MAX_PAGE_SIZE)
        category = request.args.get("category") or None
        total, items = _call(repository.browse, filters, category, offset=(page - 1) * size, limit=size)
        return jsonify(total=total, page=page, page_size=size, pages=math.ceil(total / size),
                       items=[public(i) for i in items], facets=repository.facets(filters, category))

    @app.get("/api/search")
    def api_search():
        filters = _filters(request.args, facets, {"q", "k", "category"})
        query = request.args.get("q", "").strip()
        if not query:
            raise BadRequest("q: give the words to search for, e.g. ?q=blue+jeans")
        n = _int_arg("k", k, 1, config.MAX_K)
        reading, results = _call(repository.search_text, query, k=n, filters=filters,
                                 category=request.args.get("category") or None)
        prediction = reading.pop("prediction")  # said once, beside the reading, as /api/classify says it
        return jsonify(query=query, k=n, reading=reading, prediction=prediction, results=[public(i) for i in results])

    @app.get("/api/audit")
    def api_audit():
        return jsonify(audit_listing(request.args, {"category", "limit"}))

    @app.get("/api/similar/<item_id>")
    def api_similar(item_id):
        _filters(request.args, {}, {"k"})  # no filters here: k is the only parameter
        n = _int_arg("k", k, 1, config.MAX_K)
        results = _call(repository.similar_to_item, item_id, k=n)
        return jsonify(id=item_id, k=n, results=[public(i) for i in results])

    @app.post("/api/classify")
    def api_classify():
        upload = request.files.get("image")
        title = request.form.get("title", "").strip() or None
        n = _int_arg("k", k, 1, config.MAX_K, request.form)
        same_category = _bool_arg("same_category", request.form)
        if upload is None and title is None:
            raise BadRequest("give an image (multipart field 'image') and/or a title (field 'title')")
        if upload is None:
            prediction = _call(repository.classify, title=title)
            return jsonify(prediction=prediction, crop=prediction.pop("crop"))
        photo = _read_upload(upload)
        if title is None:
            prediction, similar = _call(repository.similar_to_image, photo, k=n, same_category=same_category)
        else:
            # Photo and title together give the better category; "same category" then means that one.
            prediction = _call(repository.classify, image=photo, title=title)
            _, similar = _call(repository.similar_to_image, photo, k=n,
                               category=prediction["category"] if same_category else None)
        # Said beside the prediction: where in the photo the product was found, or null for the whole photo.
        crop = prediction.pop("crop")
        return jsonify(prediction=prediction, crop=crop, similar=[public(i) for i in similar])

    # errors: JSON under /api/, a page elsewhere

    @app.errorhandler(HTTPException)
    def http_error(err):
        message = err.description
        if err.code == 413 and not isinstance(err, _TooManyPixels):
            message = f"upload larger than {max_upload_mb:g} MB; send a smaller image"
        if request.path.startswith("/api/"):
            return jsonify(error=message), err.code
        return render_template("error.html", status=err.code, name=err.name, message=message), err.code

    @app.errorhandler(Exception)
    def server_error(err):
        log.exception("error serving %s", request.path)
        return http_error(_InternalError())

    return app


class _TooManyPixels(RequestEntityTooLarge):
    """An upload of more pixels than MAX_PIXELS: 413 with the message that says so."""


class _InternalError(HTTPException):
    code = 500
    description = "internal error; the server log has the details"


def label(name):
    """A column name as people read it: ``product_category`` -> ``Product category``,
    ``baseColour`` -> ``Base colour``."""
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").lower()
    return words[:1].upper() + words[1:]


def inside(path, folder):
    """Whether ``path``, with every link and ``..`` resolved, lies inside ``folder``."""
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, ValueError):
        return False


def catalog_image_dir(processed_dir=config.PROCESSED_DIR):
    """The image folder of the catalog make_dataset read, from its summary; ``None`` if unknown."""
    summary = config.splits_dir(processed_dir) / "summary.json"
    if not summary.is_file():
        return None
    image_dir = json.loads(summary.read_text()).get("image_dir")
    return config.project_path(image_dir) if image_dir else None


def _call(method, *args, **kwargs):
    """Call the repository; its "not found" becomes a 404, its other user errors a 400."""
    try:
        return method(*args, **kwargs)
    except NotFoundError as err:
        raise NotFound(str(err)) from None
    except ImageTooLargeError as err:
        raise _TooManyPixels(str(err)) from None
    except ShoplensError as err:
        raise BadRequest(str(err)) from None


def _int_arg(name, default, minimum, maximum=None, args=None):
    args = request.args if args is None else args
    value = args.get(name)
    if value is None or value == "":
        return default
    allowed = f"from {minimum} to {maximum}" if maximum is not None else f"from {minimum} up"
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name}: expected a whole number {allowed}, got '{value}'") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise BadRequest(f"{name}: must be {allowed}, got {number}")
    return number


def _bool_arg(name, args):
    value = args.get(name, "").strip().lower()
    if value in ("", "0", "false", "off", "no"):
        return False
    if value in ("1", "true", "on", "yes"):
        return True
    raise BadRequest(f"{name}: expected 1 or 0, got '{value}'")


def _filters(args, facets, options, strict=True):
    """The filters of a query string: ``{facet: value}``, or a list of values when a facet is
    named more than once (``gender=Men&gender=Women``: either).

    ``options`` are the other parameters the caller reads. ``strict`` refuses any
    parameter that is neither, so a misspelt filter is an error rather than silently
    ignored (the API); the page ignores them.
    """
    filters = {}
    for name in args:
        if name in options:
            continue
        if name not in facets:
            if strict:
                known = ", ".join([*sorted(options), *facets])
                raise BadRequest(f"unknown parameter '{name}' (known: {known})")
            continue
        values = [v for v in args.getlist(name) if v]
        if values:
            filters[name] = values[0] if len(values) == 1 else values
    return filters


def _read_upload(upload):
    """The bytes of an uploaded photo; a 400 naming the file if they are not one whole image."""
    data = upload.read()
    name = upload.filename or "the uploaded file"
    if not data:
        raise BadRequest(f"{name}: the file is empty; choose a photo")
    try:
        with open_image(io.BytesIO(data), name=name) as picture:
            picture.load()  # decodes every byte, so a truncated file fails here too
    except ImageTooLargeError as err:
        raise _TooManyPixels(str(err)) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadRequest(f"{name}: not an image or a damaged one ({reason}); send a JPEG, PNG or WebP photo") from None
    return data
