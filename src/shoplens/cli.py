"""The ``shoplens`` command line: one command per pipeline stage, called by the Makefile.

Every option's default comes from :mod:`shoplens.config`. A user mistake ends
with a one-line ``Error: ...`` and exit status 1, never a traceback.
"""
import functools
import json
import os
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
@click.option("--epochs", default=config.EPOCHS, type=click.IntRange(min=1),
              help="Epochs of the cosine learning-rate schedule (early stopping may end sooner).")
@click.option("--batch-size", default=config.BATCH_SIZE, type=click.IntRange(min=1))
@click.option("--learning-rate", default=config.LEARNING_RATE,
              help="Adam's learning rate, or auto: "
                   + ", ".join(f"{rate:g} for {mode}" for mode, rate in config.LEARNING_RATES.items()) + " models.")
@click.option("--patience", default=config.PATIENCE, type=click.IntRange(min=1),
              help="Epochs without a better validation loss before stopping, counted in the second half.")
@click.option("--class-weights/--no-class-weights", default=config.CLASS_WEIGHTS,
              help="Weight items inversely to their category's frequency.")
@click.option("--precision", default=config.PRECISION,
              type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
              help="Compute precision; auto uses 16 bits where the hardware has it natively.")
@click.option("--seed", default=config.SEED)
@click.option("--strategy", default=config.STRATEGY, type=click.Choice(["default", "mirrored", "multiworker"]),
              help="One process; all local GPUs (or the CPU); or the machines listed in TF_CONFIG "
                   "(BATCH_SIZE and LEARNING_RATE are per replica).")
def train(classmode, modelmode, backbone, weights, finetune, text_encoder, epochs, batch_size, learning_rate,
          patience, class_weights, precision, seed, strategy):
    """Train a classifier on the features into models/<classmode>_<modelmode>.keras."""
    from shoplens.models.train_model import train_model

    meta = train_model(classmode, modelmode, backbone, weights, finetune, text_encoder, epochs, batch_size,
                       learning_rate, patience, class_weights, precision, seed, strategy=strategy)
    resumed = f" (resumed at epoch {meta['first_epoch']})" if meta["first_epoch"] > 1 else ""
    click.echo(f"trained {meta['name']}: best epoch {meta['best_epoch']} of {meta['epochs_run']}{resumed}, "
               f"{meta['train_seconds']:.0f} s, {meta['items_per_second']:.0f} items/s in training")
    if not meta["distribution"]["chief"]:
        click.echo("the chief worker writes the model and logs")
        return
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


@main.command("extract-features")
@click.option("--model", "model_name", default=config.SEARCH_IMAGE_MODEL,
              help="The trained image model, <classmode>_image.")
@click.option("--layer", default=config.EMBEDDING_LAYER, help="The layer whose output is the embedding.")
@click.option("--batch-size", default=config.EXTRACT_BATCH_SIZE, type=click.IntRange(min=1))
@click.option("--shard", default=config.SHARD, type=click.IntRange(min=0),
              help="Embed this contiguous slice of the items (0-based) ...")
@click.option("--num-shards", default=config.NUM_SHARDS, type=click.IntRange(min=1),
              help="... of this many; merge them with merge-features.")
def extract_features_command(model_name, layer, batch_size, shard, num_shards):
    """Embed every item with the image model into models/extracted_features.npz."""
    from shoplens.models.extract_features import extract_features

    summary = extract_features(model_name, layer, batch_size, shard, num_shards)
    click.echo(f"embedded {summary['items']:,} items with {summary['model']} ({summary['layer']}, "
               f"{summary['dim']} dimensions) into {_rel(Path(summary['path']))} "
               f"({summary['seconds']:.1f} s, {summary['items_per_second']:,.0f} items/s)")


@main.command("merge-features")
@click.option("--num-shards", default=config.NUM_SHARDS, type=click.IntRange(min=1), help="Shards to merge.")
def merge_features_command(num_shards):
    """Join the shards of extract-features into models/extracted_features.npz."""
    from shoplens.models.extract_features import merge_features

    summary = merge_features(num_shards)
    click.echo(f"merged {num_shards} shards: {summary['items']:,} items into {_rel(Path(summary['path']))}")


@main.command("build-index")
@click.option("--kind", default=config.INDEX, type=click.Choice(["auto", "exact", "faiss"]),
              help="Exact search, FAISS, or chosen by size.")
@click.option("--threshold", default=config.INDEX_FAISS_THRESHOLD, type=click.IntRange(min=0),
              help="With --kind auto: FAISS from this many items on.")
def build_index_command(kind, threshold):
    """Build the search index over the extracted features: models/search_index.json (+ .faiss)."""
    from shoplens.models.extract_features import load_features_file
    from shoplens.search.index import index_for

    info = index_for(load_features_file(), kind, threshold)
    click.echo(f"built an {info['kind']} index of {info['items']:,} items in {info['build_seconds']:.1f} s: "
               f"{_rel(config.SEARCH_INDEX)}")


def _filters(ctx, param, values):
    """``FIELD=VALUE`` options (or comma-separated lists of them) -> ``{field: [values]}``."""
    filters = {}
    for pair in (p.strip() for value in values for p in value.split(",") if p.strip()):
        field, sep, value = pair.partition("=")
        if not sep or not field.strip() or not value.strip():
            raise click.BadParameter(f"expected FIELD=VALUE like gender=Men, got '{pair}'")
        filters.setdefault(field.strip(), []).append(value.strip())
    return filters


@main.command("search")
@click.option("--image", type=click.Path(dir_okay=False), help="Find products similar to this photo.")
@click.option("--text", help="Find products for this description.")
@click.option("--item", "item_id", help="Find products similar to this product id.")
@click.option("-k", "--k", "k", default=config.K, type=int, help="Results to show.")
@click.option("--same-category", is_flag=True, help="With --image: only products of the predicted category.")
@click.option("--filter", "filters", multiple=True, callback=_filters,
              help="FIELD=VALUE, e.g. gender=Men; repeat it or separate pairs with commas.")
@click.option("--category", help="Only this category or its subcategories, e.g. 'Footwear > Shoes'.")
@click.option("--offset", default=0, type=click.IntRange(min=0), help="Without a query: products to skip.")
@click.option("--limit", default=config.BROWSE_LIMIT, type=click.IntRange(min=1),
              help="Without a query: products to list.")
@click.option("--grid", type=click.Path(dir_okay=False), help="Also draw the query and its results into this PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def search_command(image, text, item_id, k, same_category, filters, category, offset, limit, grid, as_json):
    """Search the image repository by photo, text or product; without one, list the products that match."""
    from shoplens.search.repository import Repository

    if sum(q is not None for q in (image, text, item_id)) > 1:
        raise click.UsageError("give one of --image, --text and --item")
    if same_category and image is None:
        raise click.UsageError("--same-category needs --image (the category is the photo's predicted one)")
    repository = Repository.load(load_models=False)
    prediction, lines = None, []
    if image is not None:
        prediction, results = repository.similar_to_image(image, k, same_category, filters, category)
        row = {"image": image, "caption": f"predicted: {prediction['category']}", "results": results}
        lines.append(f"predicted category: {prediction['category']} ({prediction['probability']:.2f}, "
                     f"{prediction['model']})")
    elif text is not None:
        prediction, results = repository.search_text(text, k, filters, category)
        row = {"text": text, "results": results}
        lines.append(f"the text model reads it as {prediction['category']} ({prediction['probability']:.2f})"
                     if prediction else "keywords only: no text model")
    elif item_id is not None:
        query = repository.item(item_id)
        results = repository.similar_to_item(item_id, k, filters, category)
        row = {"image": query["image_path"], "caption": f"{query['id']}: {query['category']}", "results": results}
        lines.append(f"similar to {query['id']}: {query['title']} ({query['category']})")
    else:
        total, results = repository.browse(filters, category, offset, limit)
        row = {"results": results}
        lines.append(f"{total:,} products match; showing {offset + 1 if results else 0}-{offset + len(results)}")
    if as_json:
        click.echo(json.dumps({"prediction": prediction, "results": results}, indent=2))
    else:
        click.echo("\n".join([*lines, format_results(results)]))
    if grid:
        from shoplens.visualization.search_figures import plot_search_grid

        plot_search_grid([row], grid, title=lines[0])
        if not as_json:
            click.echo(f"wrote {grid}")


def format_results(results, title_width=60):
    """A ranked table: rank, id, score, category path, title."""
    if not results:
        return "no products found"
    header = ["#", "id", "score", "category", "title"]
    rows = [[str(rank), r["id"], f"{r['score']:.3f}" if "score" in r else "", r["category"],
             r["title"] if len(r["title"]) <= title_width else r["title"][:title_width - 1] + "…"]
            for rank, r in enumerate(results, start=1)]
    widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


@main.command("evaluate-search")
@click.option("--report", "report_only", is_flag=True, help="Print the last evaluation instead of running one.")
def evaluate_search_command(report_only):
    """Query every test product against the train products; write reports/metrics/search.json."""
    from shoplens.search.evaluate import evaluate_search, format_search_report
    from shoplens.search.repository import Repository

    if report_only:
        if not config.SEARCH_METRICS.is_file():
            raise ShoplensError(f"{config.SEARCH_METRICS}: not found; run `make evaluate_search`")
        click.echo(format_search_report(json.loads(config.SEARCH_METRICS.read_text())))
        return
    metrics = evaluate_search(Repository.load(load_models=False))
    click.echo(format_search_report(metrics))
    click.echo(f"wrote {_rel(config.SEARCH_METRICS)}")


@main.command()
@click.option("--host", default=config.HOST, help="Address to listen on; 0.0.0.0 for every network interface.")
@click.option("--port", default=config.PORT, type=click.IntRange(0, 65535), help="Port; 0 picks a free one.")
@click.option("--threads", default=config.SERVE_THREADS, type=click.IntRange(min=1), help="Worker threads.")
@click.option("--page-size", default=config.PAGE_SIZE, type=click.IntRange(1, config.MAX_PAGE_SIZE),
              help="Products per page.")
def serve(host, port, threads, page_size):
    """Serve the web gallery and its JSON API (waitress), with the models, embeddings and index loaded once."""
    # One BLAS thread per call, set before numpy loads: waitress's threads already share the cores, and
    # OpenBLAS splitting each small query product over threads of its own made concurrent requests wait
    # on each other (a second per nearest-neighbour query under load, instead of a tenth of a millisecond).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from waitress import create_server

    from shoplens.gallery.app import create_app
    from shoplens.search.repository import Repository

    repository = Repository.load()
    app = create_app(repository, page_size=page_size)
    server = create_server(app, host=host, port=port, threads=threads)
    listening = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    for address, bound in listening:
        address = f"[{address}]" if ":" in address else address  # an IPv6 address in a URL
        click.echo(f"gallery of {len(repository):,} products on http://{address}:{bound}/ (Ctrl+C stops it)")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


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
