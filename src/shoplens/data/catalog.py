"""Reading a raw catalog, in any supported layout, into one standard table.

Three layouts are understood:

* the generic layout: a CSV with ``id``, ``image``, ``title``, ``category`` and
  any attribute columns, images in an ``images/`` folder beside it;
* the public "Fashion Product Images" layout: ``styles.csv`` with
  ``masterCategory``, ``subCategory`` and ``articleType`` as the three levels and
  images at ``images/<id>.jpg``;
* any other CSV, by naming its columns.

The standard table has the columns ``id``, ``title`` (if the catalog has titles),
``image_path`` (absolute; if it has images), ``category_parts`` (the list of
levels as written) and the remaining columns as attributes, all as strings.
"""
import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shoplens import ShoplensError, config


@dataclass
class CatalogColumns:
    """Which column holds what; ``None`` means the layout's default.

    A column named here must exist in the CSV; a layout's default title or image
    column may be absent (an image-only or text-only catalog).
    """

    id: str | None = None
    title: str | None = None
    image: str | None = None
    category: str | None = None
    category_sep: str = config.CATEGORY_SEP
    level_cols: tuple | None = None

    def named(self):
        """The columns the user named explicitly."""
        names = [self.id, self.title, self.image, self.category, *(self.level_cols or ())]
        return [n for n in names if n]


@dataclass
class Catalog:
    """A raw catalog read into the standard table, with where it came from."""

    table: pd.DataFrame
    csv_path: Path
    image_dir: Path
    layout: str
    rows_read: int
    malformed_rows: int
    attributes: list

    @property
    def has_titles(self):
        return "title" in self.table

    @property
    def has_images(self):
        return "image_path" in self.table


def locate(path):
    """Return ``(csv_path, layout)`` for a catalog CSV or a folder holding one."""
    path = Path(path)
    if not path.exists():
        raise ShoplensError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "catalog.csv").is_file():
            return path / "catalog.csv", "generic"
        if (path / "styles.csv").is_file():
            return path / "styles.csv", "fashion"
        raise ShoplensError(f"{path}: folder holds neither catalog.csv nor styles.csv")
    return path, "fashion" if path.name == "styles.csv" else "generic"


def read_catalog(path, columns=None, levels=config.LEVELS, image_dir=None, require_category=True):
    """Read a catalog into the standard table.

    Parameters
    ----------
    path : str or Path
        A CSV file, or a folder holding ``catalog.csv`` or ``styles.csv``.
    columns : CatalogColumns, optional
        Column names for catalogs in other layouts.
    levels : int
        Number of category levels; deeper paths are cut, shorter ones padded
        by repeating their last level.
    image_dir : str or Path, optional
        Folder the image paths are relative to; default ``images/`` beside the CSV.
    require_category : bool
        Whether a catalog without its category column(s) is an error; new items to
        classify have none (their ``category_parts`` are empty).

    Returns
    -------
    Catalog
    """
    csv_path, layout = locate(path)
    columns = columns or CatalogColumns()
    frame, malformed = _read_csv(csv_path)
    image_dir = Path(image_dir) if image_dir else csv_path.parent / "images"

    if layout == "fashion":
        spec = config.FASHION_COLUMNS
        id_col = columns.id or spec["id"]
        title_col = columns.title or spec["title"]
        level_cols = columns.level_cols or (None if columns.category else spec["levels"])
        image_col = columns.image
    else:
        spec = config.GENERIC_COLUMNS
        id_col = columns.id or spec["id"]
        title_col = columns.title or spec["title"]
        image_col = columns.image or spec["image"]
        level_cols = columns.level_cols
    category_col = None if level_cols else (columns.category or config.GENERIC_COLUMNS["category"])

    found = list(frame.columns)
    has_category = all(c in frame for c in (level_cols or [category_col]))
    required = [id_col, *columns.named()]
    if require_category or has_category:
        required += list(level_cols or [category_col])
    for name in required:
        if name not in frame:
            raise ShoplensError(
                f"{csv_path}: missing column '{name}' (found: {', '.join(found)})"
            )

    table = pd.DataFrame({"id": frame[id_col].str.strip()})
    if title_col in frame:
        table["title"] = frame[title_col].str.strip()
    if layout == "fashion" and image_col is None:
        table["image_path"] = [str(image_dir / f"{i}.jpg") if i else "" for i in table["id"]]
    elif image_col in frame:
        table["image_path"] = [
            str(image_dir / name) if name else "" for name in frame[image_col].str.strip()
        ]
    if "title" not in table and "image_path" not in table:
        raise ShoplensError(
            f"{csv_path}: catalog has neither titles nor images "
            f"(looked for columns '{title_col}' and '{image_col or 'image'}'; found: {', '.join(found)})"
        )

    if not has_category:
        parts = [[]] * len(frame)
    elif level_cols:
        parts = frame[list(level_cols)].apply(lambda col: col.str.strip()).values.tolist()
    else:
        parts = frame[category_col].str.split(columns.category_sep, regex=False).tolist()
    table["category_parts"] = [_fit_levels(p, levels) for p in parts]

    used = {id_col, title_col, image_col, category_col, *(level_cols or ())}
    attributes = [c for c in frame.columns if c not in used]
    for name in attributes:
        table[name] = frame[name].str.strip()

    return Catalog(
        table=table,
        csv_path=csv_path,
        image_dir=image_dir.resolve(),
        layout=layout,
        rows_read=len(frame) + malformed,
        malformed_rows=malformed,
        attributes=attributes,
    )


def _read_csv(csv_path):
    """Read every cell as a string; count (and skip) rows with the wrong number of fields."""
    malformed = []
    try:
        frame = pd.read_csv(
            csv_path,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            on_bad_lines=malformed.append,
            engine="python",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ShoplensError(f"{csv_path}: cannot read as CSV ({reason})") from None
    except OSError as err:
        raise ShoplensError(f"{csv_path}: cannot read ({err.strerror})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, len(malformed)


def _fit_levels(parts, levels):
    """Cut a category path to ``levels`` parts, or pad it by repeating its last part."""
    parts = [p.strip() for p in parts if isinstance(p, str) and p.strip()]
    if not parts:
        return []
    return (parts + [parts[-1]] * levels)[:levels]
