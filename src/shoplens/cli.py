"""The ``shoplens`` command line: one command per pipeline stage, called by the Makefile.

Every option's default comes from :mod:`shoplens.config`. A user mistake ends
with a one-line ``Error: ...`` and exit status 1, never a traceback.
"""
import json
from pathlib import Path

import click

from shoplens import ShoplensError, config


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ShoplensError as err:
            raise click.ClickException(str(err)) from None


def _ratios(ctx, param, value):
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers like 0.7,0.15,0.15, got '{value}'") from None


def _names(ctx, param, value):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="shoplens")
def main():
    """E-commerce product classification and visual search."""


@main.command("demo-catalog")
@click.option("--n", "n", default=config.DEMO_N, type=click.IntRange(min=1), help="Number of items.")
@click.option("--seed", default=config.DEMO_SEED, help="Random seed; the same seed gives the same catalog.")
@click.option("--out", default=str(config.DEMO_CATALOG_DIR), type=click.Path(file_okay=False), help="Output folder.")
@click.option("--image-size", default=config.DEMO_IMAGE_SIZE, type=click.IntRange(min=32), help="Image side in pixels.")
@click.option("--workers", default=config.WORKERS, type=click.IntRange(min=1), help="Processes [default: one per core].")
def demo_catalog(n, seed, out, image_size, workers):
    """Generate the synthetic demo catalog: OUT/catalog.csv and OUT/images/."""
    from shoplens.data.demo_catalog import generate_demo_catalog

    summary = generate_demo_catalog(out, n=n, seed=seed, image_size=image_size, workers=workers)
    click.echo(f"wrote {summary['n']:,} items to {Path(out) / 'catalog.csv'} and {Path(out) / 'images'}/ "
               f"({summary['seconds']:.1f} s)")


@main.command("make-dataset")
@click.option("--catalog", default=str(config.CATALOG), help="Catalog CSV, or a folder holding catalog.csv or styles.csv.")
@click.option("--id-col", help="Column of item ids [default: id].")
@click.option("--title-col", help="Column of titles [default: title; productDisplayName for styles.csv].")
@click.option("--image-col", help="Column of image paths relative to the image folder [default: image].")
@click.option("--category-col", help="Column of category paths [default: category].")
@click.option("--category-sep", default=config.CATEGORY_SEP, help="Separator of levels in a category path.")
@click.option("--level-cols", callback=_names, help="Comma-separated columns, one per level, instead of a path.")
@click.option("--image-dir", type=click.Path(file_okay=False), help="Image folder [default: images/ beside the CSV].")
@click.option("--levels", default=config.LEVELS, type=int, help="Category levels; paths are cut or padded to it.")
@click.option("--language", default=config.LANGUAGE, help="Language of the titles, for stop words and stemming.")
@click.option("--min-items", default=config.MIN_ITEMS, type=int, help="Drop categories with fewer items.")
@click.option("--subsample", default=config.SUBSAMPLE, type=float, help="Fraction of items to keep, stratified.")
@click.option("--split", "split_ratios", default=",".join(map(str, config.SPLIT_RATIOS)), callback=_ratios,
              help="Train,validate,test ratios.")
@click.option("--seed", default=config.SEED, help="Random seed of subsampling and splitting.")
@click.option("--workers", default=config.WORKERS, type=click.IntRange(min=1), help="Processes [default: one per core].")
def make_dataset_command(catalog, id_col, title_col, image_col, category_col, category_sep, level_cols,
                         image_dir, levels, language, min_items, subsample, split_ratios, seed, workers):
    """Validate, clean and split a catalog into data/processed/."""
    from shoplens.data.catalog import CatalogColumns
    from shoplens.data.make_dataset import make_dataset

    columns = CatalogColumns(id=id_col, title=title_col, image=image_col, category=category_col,
                             category_sep=category_sep, level_cols=level_cols)
    summary = make_dataset(catalog, columns=columns, levels=levels, language=language, min_items=min_items,
                           subsample=subsample, split_ratios=split_ratios, seed=seed, image_dir=image_dir,
                           workers=workers)
    click.echo(describe_data(summary))


@main.command("build-features")
@click.option("--image-size", default=config.IMAGE_SIZE, type=int, help="Side of the square model input images.")
@click.option("--vocab-size", default=config.VOCAB_SIZE, type=int, help="Largest title vocabulary.")
@click.option("--title-length", default=config.TITLE_LENGTH, type=int, help="Title tokens the text model reads.")
@click.option("--workers", default=config.WORKERS, type=click.IntRange(min=1), help="Processes [default: one per core].")
def build_features_command(image_size, vocab_size, title_length, workers):
    """Preprocess images and fit the vocabulary and label encoders into data/processed/features/."""
    from shoplens.features.build_features import build_features

    click.echo(describe_features(build_features(image_size, vocab_size, title_length, workers=workers)))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
def summary(as_json):
    """Print what the last data and features runs made."""
    from shoplens.data.make_dataset import load_summary
    from shoplens.features.build_features import load_features

    data = load_summary()
    features = load_features()
    if as_json:
        features.pop("vocabulary")
        click.echo(json.dumps({"data": data, "features": features}, indent=2))
    else:
        click.echo(describe_data(data))
        click.echo(describe_features(features))


def describe_data(summary):
    """A few lines a person reads after make_dataset."""
    excluded = ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in summary["excluded"].items()) or "none"
    splits = " / ".join(f"{name} {n:,}" for name, n in summary["splits"].items())
    classes = ", ".join(f"{name} {n}" for name, n in summary["classes_per_level"].items())
    kinds = " and ".join(k for k, has in (("titles", summary["has_titles"]), ("images", summary["has_images"])) if has)
    lines = [
        f"read {summary['rows_read']:,} rows from {summary['catalog']} ({summary['layout']} layout, {kinds})",
        f"excluded: {excluded}",
    ]
    if summary["rows_dropped_by_subsample"]:
        lines.append(f"subsampled away: {summary['rows_dropped_by_subsample']:,}")
    lines += [
        f"kept {summary['rows_kept']:,}: {splits}",
        f"classes per level: {classes}",
        f"wrote {config.PROCESSED_DIR}/{{{','.join(summary['splits'])}}}.parquet and summary.json "
        f"({summary['seconds']:.1f} s)",
    ]
    return "\n".join(lines)


def describe_features(summary):
    """A few lines a person reads after build_features."""
    made = []
    if summary["has_images"]:
        made.append(f"images {summary['image_size']}x{summary['image_size']}")
    if summary["has_titles"]:
        made.append(f"vocabulary of {summary['vocab_size']:,} tokens")
    made.append("label encoders for " + ", ".join(summary["levels"]))
    return f"features: {'; '.join(made)} in {config.FEATURES_DIR} ({summary['seconds']:.1f} s)"


if __name__ == "__main__":
    main()
