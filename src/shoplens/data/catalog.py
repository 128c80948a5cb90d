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
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

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

    table: object  # a pandas.DataFrame
    csv_path: Path
    image_dir: Path
    layout: str
    rows_read: int
    malformed_rows: int
    attributes: list
    malformed_lines: list = field(default_factory=list)

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
        Its ``category_parts`` keep empty levels as ``""`` (``Apparel >  > Jeans``),
        for the caller to refuse; ``image_path`` is absolute.
    """
    # pandas loads here, not with the module: deciding whether a stage is up to date asks `locate` only.
    import pandas as pd

    csv_path, layout = locate(path)
    columns = columns or CatalogColumns()
    header, rows, malformed = read_csv_rows(csv_path)
    image_dir = Path(os.path.abspath(image_dir or csv_path.parent / "images"))
    frame = pd.DataFrame(rows, columns=header, dtype=object)

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

    has_category = all(c in frame for c in (level_cols or [category_col]))
    required = [id_col, *columns.named()]
    if require_category or has_category:
        required += list(level_cols or [category_col])
    for name in required:
        if name not in frame:
            raise ShoplensError(f"{csv_path}: missing column '{name}' (found: {', '.join(header)})")

    table = pd.DataFrame({"id": frame[id_col]})
    if title_col in frame:
        table["title"] = frame[title_col]
    if layout == "fashion" and image_col is None:
        table["image_path"] = [str(image_dir / f"{i}.jpg") if i else "" for i in table["id"]]
    elif image_col in frame:
        table["image_path"] = [str(image_dir / name) if name else "" for name in frame[image_col]]
    if "title" not in table and "image_path" not in table:
        raise ShoplensError(
            f"{csv_path}: catalog has neither titles nor images "
            f"(looked for columns '{title_col}' and '{image_col or 'image'}'; found: {', '.join(header)})"
        )

    if not has_category:
        parts = [[] for _ in range(len(frame))]
    elif level_cols:
        parts = frame[list(level_cols)].values.tolist()
    else:
        separator = columns.category_sep.strip() or columns.category_sep
        parts = [[p.strip() for p in path.split(separator)] if path else [] for path in frame[category_col]]
    table["category_parts"] = [fit_levels(p, levels) for p in parts]

    used = {id_col, title_col, image_col, category_col, *(level_cols or ())}
    renamed = {old: new for old, new in spec.get("renamed", {}).items() if new not in header}
    attributes = []
    for column in header:
        if column not in used:
            attributes.append(renamed.get(column, column))
            table[attributes[-1]] = frame[column]

    return Catalog(
        table=table,
        csv_path=csv_path,
        image_dir=image_dir,
        layout=layout,
        rows_read=len(frame) + len(malformed),
        malformed_rows=len(malformed),
        attributes=attributes,
        malformed_lines=malformed,
    )


def read_csv_rows(csv_path):
    """The header and the rows of a CSV, every cell a stripped string, and the line numbers of malformed rows.

    A row with more or fewer fields than the header is malformed, and so is one that
    an unbalanced quote runs into the rows after it: that row alone is skipped, and
    reading goes on at the next line, so one stray quote costs one row, not the rest
    of the file. A quoted field may still hold line breaks (a long title).
    """
    try:
        text = Path(csv_path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ShoplensError(f"{csv_path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                            f"{err.start:,}); save it as UTF-8") from None
    except OSError as err:
        raise ShoplensError(f"{csv_path}: cannot read ({err.strerror})") from None
    lines = text.splitlines(keepends=True)
    if not lines or not lines[0].strip():
        raise ShoplensError(f"{csv_path}: empty file; a catalog starts with a header line of column names")
    header = [name.strip() for name in next(csv.reader(lines[:1], skipinitialspace=True))]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ShoplensError(f"{csv_path}: column '{duplicated[0]}' appears more than once in the header")

    rows, malformed, start = [], [], 1
    while start < len(lines):
        reader = csv.reader(itertools.islice(lines, start, None), skipinitialspace=True)
        consumed = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                start = len(lines)
                break
            except csv.Error:  # a NUL byte, or a field over the size limit (a quote swallowing the file)
                record = None
            spanned = reader.line_num - consumed
            first_line = start + consumed
            consumed = reader.line_num
            if record is not None and len(record) == len(header) and not (
                    spanned > 1 and _holds_a_row(lines[first_line + 1:first_line + spanned], len(header))):
                rows.append([cell.strip() for cell in record])
            elif record is not None and not any(cell.strip() for cell in record):
                continue  # a blank line
            else:
                malformed.append(first_line + 1)
                if spanned > 1 or record is None:
                    start = first_line + 1  # read again from the line after the bad row's first
                    break
    return header, rows, malformed


def _holds_a_row(lines, fields):
    """Whether one of the lines that a quoted field ran over would be a whole row on its own:
    then the quote was unbalanced, not a title written over several lines."""
    for line in lines:
        try:
            if len(next(csv.reader([line], skipinitialspace=True), [])) == fields:
                return True
        except csv.Error:
            pass
    return False


def fit_levels(parts, levels):
    """Cut a category path to ``levels`` parts, or pad it by repeating its last part.

    An empty path stays empty; an empty level inside a path stays ``""``.
    """
    parts = ["" if p is None else str(p).strip() for p in parts]
    if not any(parts):
        return []
    return (parts + [parts[-1]] * levels)[:levels]
