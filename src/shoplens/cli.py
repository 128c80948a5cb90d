"""The ``shoplens`` command line: one command per pipeline stage, called by the Makefile.

Every option's default comes from :mod:`shoplens.config`. A user mistake ends
with a one-line ``Error: ...`` and exit status 1, never a traceback.
"""
import functools
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


def _column_options(command):
    """Options naming the columns of a catalog in another layout; the command gets ``columns``."""
    options = [
        click.option("--id-col", help="Column of item ids [default: id]."),
        click.option("--title-col", help="Column of titles [default: title; productDisplayName for styles.csv]."),
        click.option("--image-col", help="Column of image paths relative to the image folder [default: image]."),
        click.option("--category-col", help="Column of category paths [default: category]."),
        click.option("--category-sep", default=config.CATEGORY_SEP, help="Separator of levels in a category path."),
        click.option("--level-cols", callback=_names,
                     help="Comma-separated columns, one per level, instead of a path."),
    ]

    def with_columns(id_col, title_col, image_col, category_col, category_sep, level_cols, **kwargs):
        from shoplens.data.catalog import CatalogColumns

        columns = CatalogColumns(id=id_col, title=title_col, image=image_col, category=category_col,
                                 category_sep=category_sep, level_cols=level_cols)
        return command(columns=columns, **kwargs)

    with_columns = functools.update_wrapper(with_columns, command)
    for option in reversed(options):
        with_columns = option(with_columns)
    return with_columns


_workers = click.option("--workers", default=config.WORKERS, type=click.IntRange(min=1),
                        help="Processes [default: one per core].")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="shoplens")
def main():
    """E-commerce product classification and visual search."""


@main.command("demo-catalog")
@click.option("--n", "n", default=config.DEMO_N, type=click.IntRange(min=1), help="Number of items.")
@click.option("--seed", default=config.DEMO_SEED, help="Random seed; the same seed gives the same catalog.")
@click.option("--out", default=str(config.DEMO_CATALOG_DIR), type=click.Path(file_okay=False), help="Output folder.")
@click.option("--image-size", default=config.DEMO_IMAGE_SIZE, type=click.IntRange(min=32), help="Image side in pixels.")
@_workers
def demo_catalog(n, seed, out, image_size, workers):
    """Generate the synthetic demo catalog: OUT/catalog.csv and OUT/images/."""
    from shoplens.data.demo_catalog import generate_demo_catalog

    summary = generate_demo_catalog(out, n=n, seed=seed, image_size=image_size, workers=workers)
    click.echo(f"wrote {summary['n']:,} items to {Path(out) / 'catalog.csv'} and {Path(out) / 'images'}/ "
               f"({summary['seconds']:.1f} s)")


@main.command("make-dataset")
@click.option("--catalog", default=str(config.CATALOG),
              help="Catalog CSV, or a folder holding catalog.csv or styles.csv.")
@_column_options
@click.option("--image-dir", type=click.Path(file_okay=False), help="Image folder [default: images/ beside the CSV].")
@click.option("--levels", default=config.LEVELS, type=int, help="Category levels; paths are cut or padded to it.")
@click.option("--language", default=config.LANGUAGE, help="Language of the titles, for stop words and stemming.")
@click.option("--min-items", default=config.MIN_ITEMS, type=int, help="Drop categories with fewer items.")
@click.option("--subsample", default=config.SUBSAMPLE, type=float, help="Fraction of items to keep, stratified.")
@click.option("--split", "split_ratios", default=",".join(map(str, config.SPLIT_RATIOS)), callback=_ratios,
              help="Train,validate,test ratios.")
@click.option("--seed", default=config.SEED, help="Random seed of subsampling and splitting.")
@_workers
def make_dataset_command(catalog, columns, image_dir, levels, language, min_items, subsample, split_ratios, seed,
                         workers):
    """Validate, clean and split a catalog into data/processed/."""
    from shoplens.data.make_dataset import make_dataset

    summary = make_dataset(catalog, columns=columns, levels=levels, language=language, min_items=min_items,
                           subsample=subsample, split_ratios=split_ratios, seed=seed, image_dir=image_dir,
                           workers=workers)
    click.echo(describe_data(summary))


@main.command("build-features")
@click.option("--image-size", default=config.IMAGE_SIZE, type=int, help="Side of the square model input images.")
@click.option("--vocab-size", default=config.VOCAB_SIZE, type=int, help="Largest title vocabulary.")
@click.option("--title-length", default=config.TITLE_LENGTH, type=int, help="Title tokens the text model reads.")
@_workers
def build_features_command(image_size, vocab_size, title_length, workers):
    """Preprocess images and fit the vocabulary and label encoders into data/processed/features/."""
    from shoplens.features.build_features import build_features

    click.echo(describe_features(build_features(image_size, vocab_size, title_length, workers=workers)))


def _model_options(command):
    command = click.option("--classmode", default=config.CLASSMODE, type=click.Choice(["multilabel", "multiclass"]),
                           help="One softmax per level, or one over the full paths.")(command)
    return click.option("--modelmode", default=config.MODELMODE, type=click.Choice(["combined", "image", "text"]),
                        help="What the model reads.")(command)


@main.command()
@_model_options
@click.option("--backbone", default=config.BACKBONE,
              type=click.Choice(["vgg16", "mobilenetv2", "efficientnetb0", "resnet50", "simple"]),
              help="Image tower backbone.")
@click.option("--weights", default=config.WEIGHTS, help="Backbone weights: imagenet, none or a weights file.")
@click.option("--finetune/--frozen", default=config.FINETUNE, help="Train the backbone too, or keep it frozen.")
@click.option("--text-encoder", default=config.TEXT_ENCODER, type=click.Choice(["bag", "cnn", "lstm"]),
              help="Text tower encoder.")
@click.option("--epochs", default=config.EPOCHS, type=click.IntRange(min=1), help="Most epochs (early stopping).")
@click.option("--batch-size", default=config.BATCH_SIZE, type=click.IntRange(min=1))
@click.option("--learning-rate", default=config.LEARNING_RATE, type=click.FloatRange(min=0, min_open=True))
@click.option("--patience", default=config.PATIENCE, type=click.IntRange(min=1),
              help="Epochs without a better validation loss before stopping.")
@click.option("--class-weights/--no-class-weights", default=config.CLASS_WEIGHTS,
              help="Weight items inversely to their category's frequency.")
@click.option("--precision", default=config.PRECISION,
              type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
              help="Compute precision; auto uses 16 bits where the hardware has it natively.")
@click.option("--seed", default=config.SEED)
def train(classmode, modelmode, backbone, weights, finetune, text_encoder, epochs, batch_size, learning_rate,
          patience, class_weights, precision, seed):
    """Train a classifier on the features into models/<classmode>_<modelmode>.keras."""
    from shoplens.models.train_model import train_model

    meta = train_model(classmode, modelmode, backbone, weights, finetune, text_encoder, epochs, batch_size,
                       learning_rate, patience, class_weights, precision, seed)
    click.echo(f"trained {meta['name']}: best epoch {meta['best_epoch']} of {meta['epochs_run']}, "
               f"{meta['train_seconds']:.0f} s, {meta['items_per_second']:.0f} items/s in training")
    click.echo(f"wrote {_rel(config.MODELS_DIR / meta['name'])}.keras and .json; "
               f"TensorBoard logs in {_rel(Path(meta['log_dir']))}")


@main.command("evaluate")
@_model_options
def evaluate_command(classmode, modelmode):
    """Evaluate a trained model on the test split and write its reports."""
    from shoplens.models.predict_model import format_report, model_predict

    metrics = model_predict(classmode, modelmode)
    click.echo(format_report(metrics, f"model {metrics['model']} on the test split ({metrics['items']:,} items), "
                                      "model / random guess:"))
    click.echo(f"wrote {_rel(config.REPORTS_DIR)}/metrics/{metrics['model']}.json, "
               f"predictions/{metrics['model']}.csv and figures/{metrics['model']}_*.png")


@main.command()
@_model_options
def report(classmode, modelmode):
    """Print the report of the last evaluation of a model."""
    from shoplens.models.predict_model import format_report
    from shoplens.models.train_model import model_name

    path = config.REPORTS_DIR / "metrics" / f"{model_name(classmode, modelmode)}.json"
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make model_predict CLASSMODE={classmode} MODELMODE={modelmode}`")
    metrics = json.loads(path.read_text())
    click.echo(format_report(metrics, f"model {metrics['model']} on the test split ({metrics['items']:,} items), "
                                      "model / random guess:"))


@main.command("predict")
@_model_options
@click.option("--image", type=click.Path(dir_okay=False), help="A product photo.")
@click.option("--title", help="A product title.")
@click.option("--catalog", help="Classify a whole catalog (any layout make-dataset reads).")
@click.option("--out", type=click.Path(dir_okay=False), help="With --catalog: the predictions CSV to write.")
@_column_options
@click.option("--top", default=3, type=click.IntRange(min=1), help="Classes shown per level.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def predict_command(classmode, modelmode, image, title, catalog, out, columns, top, as_json):
    """Classify a new item (--image and/or --title) or a whole catalog (--catalog, --out)."""
    from shoplens.models.predict_model import evaluate, format_report, predict_catalog, predict_item, predictions_frame
    from shoplens.models.train_model import load_model
    from shoplens.outputs import atomic_path

    if catalog and (image or title):
        raise click.UsageError("give either --catalog or --image/--title")
    if catalog and not out:
        raise click.UsageError("--catalog needs --out FILE for the predictions")
    model, metadata = load_model(classmode, modelmode)
    language = metadata.get("language", config.LANGUAGE)
    if not catalog:
        predictions = predict_item(model, metadata, image, title, language)
        best = {"category": predictions.path(0), "levels": predictions.top(0, top)}
        if as_json:
            click.echo(json.dumps(best, indent=2))
            return
        click.echo(f"category: {best['category']}")
        for level, classes in best["levels"].items():
            click.echo(f"{level}: " + ", ".join(f"{c} {p:.2f}" for c, p in classes))
        return

    table, predictions, skipped = predict_catalog(model, metadata, catalog, columns, language)
    with atomic_path(out) as tmp:
        predictions_frame(predictions, table).to_csv(tmp, index=False)
    has_truth = bool(len(table)) and all(len(p) for p in table["category_parts"])
    report = evaluate(predictions, table, metadata) if has_truth else None
    if as_json:
        click.echo(json.dumps({"items": len(table), "skipped": skipped, "metrics": report}, indent=2))
        return
    click.echo(f"classified {len(table):,} items into {out}"
               + (f" (skipped: {', '.join(f'{n} {r}' for r, n in skipped.items())})" if skipped else ""))
    if report:
        click.echo(format_report(report, f"model {metadata['name']} on {catalog}, model / random guess:"))


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
        f"wrote {_rel(config.PROCESSED_DIR)}/{{{','.join(summary['splits'])}}}.parquet and summary.json "
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
    return f"features: {'; '.join(made)} in {_rel(config.FEATURES_DIR)} ({summary['seconds']:.1f} s)"


def _rel(path):
    """A path as the user would type it: relative to the current folder where possible."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


if __name__ == "__main__":
    main()
