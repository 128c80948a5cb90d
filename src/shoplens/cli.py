"""The ``shoplens`` command line: one command per pipeline stage, called by the Makefile.

The options of the pipeline are *project options*. Each has a name, the Make
variable (``SEED``, ``CATALOG``), and a default in :mod:`shoplens.config`. Once
given, on the make command line or as an option of a command, it is remembered
in ``params.yaml`` (:mod:`shoplens.params`) when the command that uses it
succeeds, and holds for every later command. A stage command runs its stage
only when the stage's options, inputs or code changed (:mod:`shoplens.stages`).

A user mistake ends with a one-line ``Error: ...`` and exit status 1, never a traceback.
"""
import functools
import json
import os
import sys
import warnings
from pathlib import Path

import click
from click.core import ParameterSource

from shoplens import ShoplensError, config, params
from shoplens.models import backbones
from shoplens.outputs import disk_full_message, read_stage
from shoplens.search import index as indexes
from shoplens.stages import run_stage


class ProjectOption(click.Option):
    """A command option that is also a project option, named ``var`` (by default its long flag in capitals).

    ``remember=False`` marks options of one run (a query, a photo): taken from the make
    command line, never written to ``params.yaml``.
    """

    def __init__(self, *args, var=None, remember=True, **kwargs):
        super().__init__(*args, **kwargs)
        flag = next((o for o in self.opts if o.startswith("--")), self.opts[0])
        self.var = var or flag.lstrip("-").replace("-", "_").upper()
        self.remember = remember


def option(*decls, var=None, remember=True, **kwargs):
    """A :class:`ProjectOption` decorator, as ``click.option`` makes plain ones."""
    return click.option(*decls, cls=ProjectOption, var=var, remember=remember, **kwargs)


class _Command(click.Command):
    def invoke(self, ctx):
        result = super().invoke(ctx)
        _remember(ctx)  # only once the command succeeded
        return result


class _Group(click.Group):
    command_class = _Command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ShoplensError as err:
            raise click.ClickException(str(err)) from None
        except click.UsageError as err:  # one line, not click's usage block
            command = f"shoplens {err.ctx.info_name}" if err.ctx and err.ctx.parent else "shoplens"
            raise click.ClickException(f"{err.format_message()} (`{command} --help` lists the options)") from None
        except OSError as err:
            message = disk_full_message(err, Path(err.filename).parent if err.filename else config.PROJECT_DIR)
            if message is None:
                raise
            raise click.ClickException(message) from None


# Make variables the group reads itself.
GROUP_VARIABLES = {"VERBOSE"}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--verbose", is_flag=True, help="Also show the log lines of TensorFlow and other libraries.")
@click.version_option(package_name="shoplens")
@click.pass_context
def main(ctx, verbose):
    """E-commerce product classification and visual search."""
    ctx.obj = {"verbose": verbose or _truthy(params.given().get("VERBOSE"))}
    if not ctx.obj["verbose"]:
        # Set before TensorFlow is imported (every command imports it later, through _tensorflow). Level 2 hides
        # the C++ INFO and WARNING lines, such as the grappler cost estimator's multi-kilobyte "Error in
        # PredictCost() ... CropAndResize" warning at each pass over the augmented training images (harmless:
        # it cannot price a crop of a batch of unknown size), and keeps C++ errors, such as why a worker of a
        # multi-machine run was lost. Level 3 would hide those too. Start-up lines print before the level
        # applies: _tensorflow keeps them off the terminal. A user's own TF_CPP_MIN_LOG_LEVEL wins.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        warnings.filterwarnings("ignore", category=UserWarning)
    ctx.default_map = _default_map(ctx)


def _truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _project_options():
    """``(command name, command, option)`` of every project option of every command."""
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, ProjectOption):
                yield name, command, param


def _check(command_name, command, param, value, source):
    """``value`` converted by ``param``; a one-line error naming the option and where it came from."""
    ctx = click.Context(command, info_name=command_name, parent=click.get_current_context(silent=True))
    try:
        return param.process_value(ctx, _as_given(param, value))
    except click.BadParameter as err:
        raise ShoplensError(f"{source}: {param.var}={value}: {err.message}") from None


def _as_given(param, value):
    """A value as if typed on the command line: params.yaml keeps numbers, and flags as 0 or 1, which click's
    types read only as text."""
    if param.multiple:
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return str(value)


def _default_map(ctx):
    """The value of each option of each command: from the make command line, else from ``params.yaml``.

    Every variable given to make is checked now, before any stage runs, and so is every
    remembered option of the command about to run.
    """
    given, stored = params.given(), params.load()
    known = {param.var for _, _, param in _project_options()} | GROUP_VARIABLES
    for name in given:
        if name not in known:
            close = [k for k in sorted(known) if k.startswith(name[:3])]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ShoplensError(f"unknown option {name}{hint}; `make params` lists them all")
    defaults = {}
    for command_name, command, param in _project_options():
        if param.var in given:
            _check(command_name, command, param, given[param.var], "make command line")
            value = given[param.var]
        elif param.var in stored and param.remember:
            if command_name == ctx.invoked_subcommand:
                _check(command_name, command, param, stored[param.var], config.PARAMS_FILE.name)
            value = stored[param.var]
        else:
            continue
        defaults.setdefault(command_name, {})[param.name] = _as_given(param, value)
    return defaults


def _remember(ctx):
    """Write the project options this command was given, on either command line, into ``params.yaml``.

    The command of the target make was asked for also writes the options given to make that none of the
    commands before it read: they all succeeded, so the whole make run did.
    """
    given = params.given()
    updates = {}
    for param in ctx.command.params:
        if not isinstance(param, ProjectOption) or not param.remember:
            continue
        source = ctx.get_parameter_source(param.name)
        if source == ParameterSource.COMMANDLINE or (source == ParameterSource.DEFAULT_MAP and param.var in given):
            value = ctx.params[param.name]
            if value is not None:
                updates[param.var] = _stored(value)
    if os.environ.get("SHOPLENS_GOAL"):
        remembered = {param.var for _, _, param in _project_options() if param.remember}
        for name in given:
            if name in remembered and name not in updates and resolved(name) is not None:
                updates[name] = _stored(resolved(name))
    stored = params.load()
    if any(stored.get(name) != value for name, value in updates.items()):
        try:
            params.save(updates, order=[param.var for _, _, param in _project_options()])
        except OSError as err:
            click.echo(f"warning: {config.PARAMS_FILE}: cannot remember {', '.join(updates)} ({err.strerror})",
                       err=True)


def _remember_given(names):
    """Remember the values of these options given on the make command line (used by another command's stage)."""
    given = params.given()
    updates = {name: given[name] for name in names if name in given}
    if updates:
        params.save({name: _stored(resolved(name)) for name in updates},
                    order=[param.var for _, _, param in _project_options()])


def _stored(value):
    """An option's value as ``params.yaml`` keeps it: numbers and text as they are, lists comma-separated."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def resolved(var):
    """The value of a project option now: from the make command line, ``params.yaml`` or its default."""
    given, stored = params.given(), params.load()
    for command_name, command, param in _project_options():
        if param.var == var:
            if var in given:
                return _check(command_name, command, param, given[var], "make command line")
            if var in stored and param.remember:
                return _check(command_name, command, param, stored[var], config.PARAMS_FILE.name)
            return param.get_default(click.Context(command, info_name=command_name), call=True)
    raise KeyError(var)


def _echo_stage(message):
    click.echo(message)


def _tensorflow():
    """Import TensorFlow with its start-up lines (CUDA probing, CPU features) kept off the terminal.

    Those lines come from native code before TensorFlow's own log level applies, so
    file descriptor 2 itself is pointed at ``/dev/null`` meanwhile; ``--verbose`` shows them.
    """
    if "tensorflow" in sys.modules or click.get_current_context().obj.get("verbose"):
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        tensorflow.config.list_physical_devices("GPU")  # the CUDA probe prints its line here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow


def _ratios(ctx, param, value):
    if isinstance(value, (tuple, list)):
        return tuple(float(v) for v in value)
    try:
        return tuple(float(v) for v in str(value).split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers like 0.7,0.15,0.15, got '{value}'") from None


def _names(ctx, param, value):
    if isinstance(value, (tuple, list)):
        return tuple(value) or None
    return tuple(v.strip() for v in str(value).split(",") if v.strip()) if value else None


def _learning_rate(value):
    from shoplens.pipeline import resolve_learning_rate

    try:
        resolve_learning_rate(value, "image")
    except ShoplensError:
        raise click.BadParameter(f"expected a positive number or auto, got '{value}'") from None
    return str(value)


class _Weights(click.ParamType):
    """``imagenet``, ``none`` or an existing weights file."""

    name = "imagenet|none|FILE"

    def convert(self, value, param, ctx):
        value = str(value)
        if value not in ("imagenet", "none") and not Path(value).is_file():
            self.fail(f"'{value}' is neither imagenet, none nor a weights file that exists", param, ctx)
        return value


class _Catalog(click.ParamType):
    """``demo`` or a CSV file or folder that exists."""

    name = "demo|PATH"

    def convert(self, value, param, ctx):
        value = str(value)
        if value != "demo" and not Path(value).exists():
            self.fail(f"'{value}': no such file or folder", param, ctx)
        return value


class _OutputFile(click.ParamType):
    """A file to write, in a folder that exists."""

    name = "FILE"

    def convert(self, value, param, ctx):
        path = Path(value)
        if path.is_dir():
            self.fail(f"'{value}' is a folder; name a file", param, ctx)
        parent = path.parent
        if not parent.exists():
            missing = next(p for p in [parent, *parent.parents] if p.exists() or p == p.parent)
            kind = "is a file" if missing.is_file() else "does not exist"
            self.fail(f"'{value}': '{missing if missing.is_file() else parent}' {kind}", param, ctx)
        if not parent.is_dir():
            self.fail(f"'{value}': '{parent}' is a file, not a folder", param, ctx)
        return str(path)


def _column_options(command):
    """Options naming the columns of a catalog in another layout; the command gets ``columns``."""
    options = [
        option("--id-col", default="", help="Column of item ids [default: id]."),
        option("--title-col", default="", help="Column of titles [default: title; productDisplayName for styles.csv]."),
        option("--image-col", default="", help="Column of image paths relative to the image folder [default: image]."),
        option("--category-col", default="", help="Column of category paths [default: category]."),
        option("--category-sep", default=config.CATEGORY_SEP, help="Separator of levels in a category path."),
        option("--level-cols", default="", callback=_names,
               help="Comma-separated columns, one per level, instead of a path."),
    ]

    def with_columns(id_col, title_col, image_col, category_col, category_sep, level_cols, **kwargs):
        from shoplens.data.catalog import CatalogColumns

        columns = CatalogColumns(id=id_col or None, title=title_col or None, image=image_col or None,
                                 category=category_col or None, category_sep=category_sep, level_cols=level_cols)
        return command(columns=columns, **kwargs)

    with_columns = functools.update_wrapper(with_columns, command)
    for decorator in reversed(options):
        with_columns = decorator(with_columns)
    return with_columns


_workers = option("--workers", default=config.WORKERS, type=click.IntRange(min=1),
                  help="Processes for image work [default: one per core].")
def _force_the_goal_only(ctx, param, value):
    # FORCE=1 given to make runs again the stage of the target asked for, not every stage before it.
    from_make = ctx.get_parameter_source(param.name) == ParameterSource.DEFAULT_MAP
    return bool(value) and not (from_make and not os.environ.get("SHOPLENS_GOAL"))


_force = option("--force", is_flag=True, remember=False, callback=_force_the_goal_only,
                help="Run the stage even if its outputs are up to date.")


# Stages

@main.command("demo-catalog")
@option("--n", "n", var="DEMO_N", default=config.DEMO_N, type=click.IntRange(min=1), help="Number of items.")
@option("--seed", var="DEMO_SEED", default=config.DEMO_SEED, type=click.IntRange(min=0),
        help="Random seed; the same seed gives the same catalog.")
@option("--image-size", var="DEMO_IMAGE_SIZE", default=config.DEMO_IMAGE_SIZE, type=click.IntRange(32, 1024),
        help="Image side in pixels.")
@option("--planted", var="DEMO_PLANTED", default=config.DEMO_PLANTED, type=click.FloatRange(0, 0.5),
        help="Share of products filed under a wrong category, and again as many duplicated, for the audit to find.")
@option("--clutter", var="DEMO_CLUTTER", default=config.DEMO_CLUTTER, type=click.FloatRange(0, 1),
        help="Share of photos showing the product small and off-centre on a busy background (true boxes in "
             "boxes.csv).")
@_workers
@_force
def demo_catalog_command(n, seed, image_size, planted, clutter, workers, force):
    """Generate the synthetic demo catalog: data/raw/demo/catalog.csv and images/."""
    _demo_catalog(n, seed, image_size, planted, clutter, workers, force)


def _demo_catalog(n, seed, image_size, planted, clutter, workers, force=False):
    from shoplens.pipeline import demo_catalog_key

    def build():
        from shoplens.data.demo_catalog import make_demo_catalog

        return make_demo_catalog(config.DEMO_CATALOG_DIR, n, seed, image_size, workers, planted=planted,
                                 clutter=clutter)

    summary = run_stage("demo catalog", config.DEMO_CATALOG_DIR,
                        demo_catalog_key(n, seed, image_size, planted, clutter), build, force, _echo_stage)
    if summary:
        cluttered = f"{summary['cluttered']:,} photos cluttered, their boxes in boxes.csv; " if clutter else ""
        click.echo(f"wrote {summary['n']:,} items to {_rel(config.DEMO_CATALOG_DIR)}/catalog.csv and images/ "
                   f"({summary['planted']:,} filed under a wrong category and as many duplicates planted; "
                   f"{cluttered}{summary['seconds']:.1f} s)")


@main.command("make-dataset")
@option("--catalog", default=config.CATALOG, type=_Catalog(),
        help="demo (the demo catalog, made as needed), a catalog CSV, or a folder holding catalog.csv or styles.csv.")
@_column_options
@option("--image-dir", default="", help="Image folder [default: images/ beside the CSV].")
@option("--levels", default=config.LEVELS, type=click.IntRange(1, 10),
        help="Category levels; paths are cut or padded to it.")
@option("--language", default=config.LANGUAGE, help="Language of the titles, for stop words and stemming.")
@option("--min-items", default=config.MIN_ITEMS, type=click.IntRange(min=1), help="Drop categories with fewer items.")
@option("--subsample", default=config.SUBSAMPLE, type=click.FloatRange(0, 1, min_open=True),
        help="Fraction of items to keep, stratified.")
@option("--split", "split_ratios", default=",".join(map(str, config.SPLIT_RATIOS)), callback=_ratios,
        help="Train,validate,test ratios.")
@option("--seed", default=config.SEED, type=int, help="Random seed of subsampling, splitting and training.")
@option("--group-split", default=config.GROUP_SPLIT, type=click.Choice(["title,image", "title", "image", "none"]),
        help="Keep items that share a cleaned title and/or an image inside one split.")
@option("--unseen/--no-unseen", default=config.UNSEEN,
        help=f"Hold {config.UNSEEN_SHARE:.0%} of the last level's categories out of training, into an "
             f"'{config.UNSEEN_SPLIT}' split, for evaluate-search's unseen-category retrieval.")
@_workers
@_force
def make_dataset_command(catalog, columns, image_dir, levels, language, min_items, subsample, split_ratios, seed,
                         group_split, unseen, workers, force):
    """Validate, clean and split a catalog into data/processed/splits/."""
    from shoplens.pipeline import dataset_key

    def build():
        from shoplens.data.make_dataset import make_dataset

        return make_dataset(catalog, columns=columns, levels=levels, language=language, min_items=min_items,
                            subsample=subsample, split_ratios=split_ratios, seed=seed, group_split=group_split,
                            unseen=unseen, image_dir=image_dir, workers=workers)

    if catalog == "demo":
        demo = ("DEMO_N", "DEMO_SEED", "DEMO_IMAGE_SIZE", "DEMO_PLANTED", "DEMO_CLUTTER")
        _demo_catalog(*map(resolved, demo), workers)
        _remember_given(demo)
    image_dir = image_dir or None
    key = dataset_key(catalog, columns, levels, language, min_items, subsample, split_ratios, seed, group_split,
                      image_dir, unseen)
    summary = run_stage("data", config.SPLITS_DIR, key, build, force, _echo_stage)
    if summary:
        click.echo(describe_data(summary))


@main.command("build-features")
@option("--image-size", default=config.IMAGE_SIZE, type=click.IntRange(8, config.MAX_IMAGE_SIZE),
        help="Side of the square model input images.")
@option("--vocab-size", default=config.VOCAB_SIZE, type=click.IntRange(min=2), help="Largest title vocabulary.")
@option("--title-length", default=config.TITLE_LENGTH, type=click.IntRange(min=1),
        help="Title tokens the text model reads.")
@option("--pretrained-image-size", default=config.PRETRAINED_IMAGE_SIZE,
        type=click.IntRange(32, config.MAX_IMAGE_SIZE),
        help="Side of the images a pretrained backbone reads; made when BACKBONE is one.")
@_workers
@_force
def build_features_command(image_size, vocab_size, title_length, pretrained_image_size, workers, force):
    """Preprocess images and fit the vocabulary and label encoders into data/processed/features/."""
    from shoplens.pipeline import features_key

    # Images at a pretrained backbone's size only for a project that trains one; once made, they are kept
    # while the project trains the small CNN, so that going back and forth does not remake the features.
    if not backbones.is_pretrained(resolved("BACKBONE")) and _published_pretrained_size() != pretrained_image_size:
        pretrained_image_size = None

    def build():
        from shoplens.features.build_features import build_features

        return build_features(image_size, vocab_size, title_length, pretrained_image_size, workers=workers)

    key = features_key(image_size, vocab_size, title_length, pretrained_image_size)
    summary = run_stage("features", config.FEATURES_DIR, key, build, force, _echo_stage)
    if summary:
        click.echo(describe_features(summary))


_CLASSMODES = ("multilabel", "multiclass")
_MODELMODES = ("combined", "image", "text")


def _published_pretrained_size():
    record = read_stage(config.FEATURES_DIR)
    return record["key"]["options"].get("PRETRAINED_IMAGE_SIZE") if record else None


def _model_options(command):
    command = option("--classmode", default=config.CLASSMODE, type=click.Choice(_CLASSMODES),
                     help="One softmax per level, or one over the full paths.")(command)
    return option("--modelmode", default=config.MODELMODE, type=click.Choice(_MODELMODES),
                  help="What the model reads.")(command)


@main.command()
@_model_options
@option("--backbone", default=config.BACKBONE,
        type=click.Choice(backbones.NAMES),
        help="Image tower backbone: a pretrained keras.applications one, or one trained from scratch (a small "
             "CNN, a Vision Transformer).")
@option("--weights", default=config.WEIGHTS, type=_Weights(), help="Backbone weights: imagenet, none or a file.")
@option("--finetune/--frozen", default=config.FINETUNE,
        help="After the heads, train the top blocks of a pretrained backbone too, or keep it frozen.")
@option("--finetune-blocks", default=config.FINETUNE_BLOCKS, type=click.IntRange(min=1),
        help="Blocks of the backbone, from the top, that fine-tuning trains.")
@option("--finetune-epochs", default=config.FINETUNE_EPOCHS, type=click.IntRange(min=1),
        help="Epochs of fine-tuning, after the heads' EPOCHS.")
@option("--finetune-learning-rate", default=config.FINETUNE_LEARNING_RATE,
        callback=lambda ctx, param, value: _learning_rate(value), help="Adam's rate while fine-tuning.")
@option("--vit-patch-size", default=config.VIT_PATCH_SIZE, type=click.IntRange(min=1),
        help="BACKBONE=vit: side of its square patches, in pixels; it must divide IMAGE_SIZE.")
@option("--vit-layers", default=config.VIT_LAYERS, type=click.IntRange(min=1),
        help="BACKBONE=vit: transformer layers.")
@option("--text-encoder", default=config.TEXT_ENCODER, type=click.Choice(["bag", "cnn", "lstm"]),
        help="Text tower encoder.")
@option("--loss", default=config.LOSS, type=click.Choice(config.LOSSES),
        help="Heads of a model with an image tower: dense softmax, or normalised softmax (cosine classifiers, "
             "metric learning for search).")
@option("--temperature", default=config.TEMPERATURE, type=click.FloatRange(0, min_open=True),
        help="normsoftmax: the cosines are divided by it; lower is sharper.")
@option("--margin", default=config.MARGIN, type=click.FloatRange(0, 1),
        help="normsoftmax: cosine margin the true class must win by in training.")
@option("--crop", default=config.CROP, type=click.Choice(config.CROPS),
        help="An image model: read whole photos, or (auto) find the product in each, train on the crops too, and "
             "classify and embed the crop of every photo.")
@option("--epochs", default=config.EPOCHS, type=click.IntRange(min=1),
        help="Epochs of the cosine learning-rate schedule (early stopping may end sooner).")
@option("--batch-size", default=config.BATCH_SIZE, type=click.IntRange(min=1))
@option("--learning-rate", default=config.LEARNING_RATE, callback=lambda ctx, param, value: _learning_rate(value),
        help="Adam's learning rate, or auto: "
             + ", ".join(f"{rate:g} for {mode}" for mode, rate in config.LEARNING_RATES.items()) + " models.")
@option("--patience", default=config.PATIENCE, type=click.IntRange(min=1),
        help="Epochs without a better validation loss before stopping, counted in the second half.")
@option("--class-weights/--no-class-weights", default=config.CLASS_WEIGHTS,
        help="Weight items inversely to their category's frequency.")
@option("--precision", default=config.PRECISION,
        type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
        help="Compute precision; auto uses 16 bits where the hardware has it natively.")
@option("--seed", default=config.SEED, type=int)
@option("--strategy", default=config.STRATEGY, type=click.Choice(["default", "mirrored", "multiworker"]),
        help="One process; all local GPUs (or the CPU); or the machines listed in TF_CONFIG "
             "(BATCH_SIZE and LEARNING_RATE are per replica).")
@click.option("--search", "for_search", is_flag=True,
              help="Train the models search uses instead: SEARCH_IMAGE_MODEL, and SEARCH_TEXT_MODEL where the "
                   "catalog has titles.")
@_force
def train(classmode, modelmode, backbone, weights, finetune, finetune_blocks, finetune_epochs,
          finetune_learning_rate, text_encoder, loss, temperature, margin, crop, epochs, batch_size, learning_rate,
          patience, class_weights, precision, seed, strategy, vit_patch_size, vit_layers, for_search, force):
    """Train a classifier on the features into models/<classmode>_<modelmode>/."""
    from shoplens.pipeline import features_summary, model_dir, resolve_learning_rate, train_key

    names = [f"{classmode}_{modelmode}"]
    if for_search:
        names = [resolved("SEARCH_IMAGE_MODEL")]
        if features_summary()["has_titles"]:
            names.append(resolved("SEARCH_TEXT_MODEL"))
    for name in names:
        classmode, _, modelmode = name.partition("_")
        options = dict(classmode=classmode, modelmode=modelmode, backbone=backbone, weights=weights,
                       finetune=finetune, text_encoder=text_encoder, loss=loss, temperature=temperature,
                       margin=margin, epochs=epochs, batch_size=batch_size,
                       learning_rate=resolve_learning_rate(learning_rate, modelmode), patience=patience,
                       class_weights=class_weights, precision=precision, seed=seed, strategy=strategy,
                       finetune_blocks=finetune_blocks, finetune_epochs=finetune_epochs,
                       finetune_learning_rate=resolve_learning_rate(finetune_learning_rate, modelmode),
                       vit_patch_size=vit_patch_size, vit_layers=vit_layers, crop=crop)

        def build(options=options):
            _tensorflow()
            from shoplens.models.train_model import train_model

            return train_model(**options)

        meta = run_stage(f"model {name}", model_dir(name), train_key(**options), build, force, _echo_stage)
        if meta:
            _describe_training(meta)


_STAGES = {"heads": "of the heads", "fine-tuning": "of fine-tuning", "items": "on the items",
           "photos": "on the whole photos", "crops": "on the photos and their crops"}


def _describe_training(meta):
    resumed = f" (resumed at epoch {meta['first_epoch']})" if meta["first_epoch"] > 1 else ""
    epochs, stages = meta["stage_epochs"], [_STAGES[stage] for stage in meta["stages"]]
    best = f"best epoch {meta['best_epoch']} of {epochs[-1]}" + (f" {stages[-1]}" if len(stages) > 1 else "")
    best = ", then ".join([*(f"{n} epochs {stage}" for n, stage in zip(epochs, stages[:-1])), best])
    found = meta.get("products_found")
    if found:
        best += (f" (the product found in {found['photos']:,} photos: {found['plain']:,} on a plain background, "
                 f"{found['photos'] - found['plain']:,} by the activation maps)")
    caching = (f" after {meta['backbone_features_seconds']:.0f} s caching the backbone's activations"
               if meta.get("backbone_features_seconds") else "")
    click.echo(f"trained {meta['name']}: {best}{resumed}, {meta['train_seconds']:.0f} s{caching}, "
               f"{meta['items_per_second']:.0f} items/s in training")
    if not meta["distribution"]["chief"]:
        click.echo("the chief worker writes the model and logs")
        return
    click.echo(f"wrote {_rel(config.MODELS_DIR / meta['name'])}/; TensorBoard logs in {_rel(Path(meta['log_dir']))}")


@main.command("evaluate")
@_model_options
@_force
def evaluate_command(classmode, modelmode, force):
    """Evaluate a trained model on the test split, publish its reports and print them."""
    from shoplens.models.report import format_report
    from shoplens.models.trained import load_model
    from shoplens.pipeline import evaluate_key, evaluation_dir

    name = f"{classmode}_{modelmode}"
    _, metadata = load_model(classmode, modelmode, metadata_only=True)
    folder = evaluation_dir(metadata["data"]["catalog_name"], name)

    def build():
        _tensorflow()
        from shoplens.models.predict_model import model_predict

        return model_predict(classmode, modelmode)

    run_stage(f"evaluation of {name}", folder, evaluate_key(name), build, force, _echo_stage)
    metrics = json.loads((folder / "metrics.json").read_text())
    click.echo(format_report(metrics, f"model {name} on the test split of {metrics['catalog']} "
                                      f"({metrics['items']:,} items):"))
    click.echo(f"reports in {_rel(folder)}/")


@main.command("predict")
@_model_options
@click.option("--image", type=click.Path(dir_okay=False), help="A product photo.")
@click.option("--title", help="A product title.")
@click.option("--catalog", "new_catalog", help="Classify a whole catalog (any layout make-dataset reads).")
@click.option("--out", type=_OutputFile(), help="With --catalog: the predictions CSV to write.")
@_column_options
@click.option("--top", default=3, type=click.IntRange(min=1), help="Classes shown per level.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def predict_command(classmode, modelmode, image, title, new_catalog, out, columns, top, as_json):
    """Classify a new item (--image and/or --title) or a whole catalog (--catalog, --out)."""
    from shoplens.models.metrics import evaluate
    from shoplens.models.predict_model import catalog_inputs, item_inputs, predict, predictions_frame
    from shoplens.models.report import format_report
    from shoplens.models.trained import load_model
    from shoplens.outputs import atomic_path

    if new_catalog and (image or title):
        raise click.UsageError("give either --catalog or --image/--title")
    if new_catalog and not out:
        raise click.UsageError("--catalog needs --out FILE for the predictions")
    # Everything the user gave is checked before the model is loaded, which takes seconds.
    _, metadata = load_model(classmode, modelmode, metadata_only=True)
    language = metadata.get("language", config.LANGUAGE)
    if new_catalog:
        table, inputs, skipped = catalog_inputs(metadata, new_catalog, columns, language)
        photos = table["image_path"].tolist() if "image_path" in table else None
    else:
        inputs = item_inputs(metadata, image, title, language)
        photos = [image]
    _tensorflow()
    model, metadata = load_model(classmode, modelmode)
    predictions = predict(model, metadata, inputs, photos)
    if not new_catalog:
        best = {"category": predictions.path(0), "levels": predictions.top(0, top)}
        if as_json:
            click.echo(json.dumps(best, indent=2))
            return
        click.echo(f"category: {best['category']}")
        for level, classes in best["levels"].items():
            click.echo(f"{level}: " + ", ".join(f"{c} {p:.2f}" for c, p in classes))
        return

    with atomic_path(out) as tmp:
        predictions_frame(predictions, table).to_csv(tmp, index=False)
    has_truth = bool(len(table)) and all(len(p) and "" not in p for p in table["category_parts"])
    report = evaluate(predictions, table, metadata) if has_truth else None
    if as_json:
        click.echo(json.dumps({"items": len(table), "skipped": skipped, "metrics": report}, indent=2))
        return
    click.echo(f"classified {len(table):,} items into {out}"
               + (f" (skipped: {', '.join(f'{n} {r}' for r, n in skipped.items())})" if skipped else ""))
    if report:
        click.echo(format_report(report, f"model {metadata['name']} on {new_catalog}:"))


@main.command("extract-features")
@option("--model", "model_name", var="SEARCH_IMAGE_MODEL", default=config.SEARCH_IMAGE_MODEL,
        help="The trained image model, <classmode>_image.")
@option("--layer", var="EMBEDDING_LAYER", default=config.EMBEDDING_LAYER,
        help="The layer whose output is the embedding.")
@click.option("--batch-size", default=config.EXTRACT_BATCH_SIZE, type=click.IntRange(min=1))
@option("--shard", default=config.SHARD, type=click.IntRange(min=0), remember=False,
        help="Embed this contiguous slice of the items (0-based) ...")
@option("--num-shards", default=config.NUM_SHARDS, type=click.IntRange(min=1), remember=False,
        help="... of this many; merge them with merge-features.")
@_force
def extract_features_command(model_name, layer, batch_size, shard, num_shards, force):
    """Embed every item with the image model into models/embeddings/."""
    from shoplens.pipeline import embeddings_dir, extract_key

    def build():
        _tensorflow()
        from shoplens.models.extract_features import extract_features

        return extract_features(model_name, layer, batch_size, shard, num_shards)

    key = extract_key(model_name, layer, shard, num_shards)
    if num_shards == 1:
        key = _merged_key(key, model_name, layer) or key
    summary = run_stage("embeddings", embeddings_dir(shard, num_shards), key, build, force, _echo_stage)
    if summary:
        cropped = ", cropped to the product" if summary["crop"] == "auto" else ""
        click.echo(f"embedded {summary['items']:,} items with {summary['model']} ({summary['layer']}, "
                   f"{summary['dim']} dimensions{cropped}) into {_rel(Path(summary['path']))} "
                   f"({summary['seconds']:.1f} s, {summary['items_per_second']:,.0f} items/s)")


def _merged_key(key, model_name, layer):
    """The key of the published embeddings if they were merged from shards that are all up to date with ``key``'s
    options and model: then they are the embeddings of every item, and nothing needs extracting again."""
    from shoplens.outputs import read_stage
    from shoplens.pipeline import embeddings_dir, extract_key, merge_key

    record = read_stage(embeddings_dir())
    shards = (record or {}).get("key", {}).get("options", {}).get("NUM_SHARDS", 1)
    if shards == 1:
        return None
    try:
        if record["key"] != merge_key(shards):
            return None
    except ShoplensError:  # a shard is gone
        return None
    for shard in range(shards):
        if (read_stage(embeddings_dir(shard, shards)) or {}).get("key") != extract_key(model_name, layer, shard,
                                                                                        shards):
            return None
    return record["key"]


@main.command("merge-features")
@option("--num-shards", default=config.NUM_SHARDS, type=click.IntRange(min=1), remember=False,
        help="Shards to merge.")
@_force
def merge_features_command(num_shards, force):
    """Join the shards of extract-features into models/embeddings/."""
    from shoplens.pipeline import embeddings_dir, merge_key

    def build():
        from shoplens.models.extract_features import merge_features

        return merge_features(num_shards)

    summary = run_stage("embeddings", embeddings_dir(), merge_key(num_shards), build, force, _echo_stage)
    if summary:
        click.echo(f"merged {num_shards} shards: {summary['items']:,} items into {_rel(Path(summary['path']))}")


@main.command("build-index")
@option("--kind", var="INDEX", default=config.INDEX, type=click.Choice(indexes.KINDS),
        help="Exact search, FAISS, or chosen by size.")
@option("--threshold", var="INDEX_FAISS_THRESHOLD", default=config.INDEX_FAISS_THRESHOLD,
        type=click.IntRange(min=0), help="With --kind auto: FAISS from this many items on.")
@option("--precision", var="INDEX_PRECISION", default=config.INDEX_PRECISION, type=click.Choice(indexes.PRECISIONS),
        help="How the exact index scans the vectors: int8 reads a quarter of the bytes, then rescores its best "
             "candidates in float32 from disk.")
@_force
def build_index_command(kind, threshold, precision, force):
    """Build the search index over the extracted features: models/search_index/."""
    from shoplens.pipeline import index_dir, index_key

    def build():
        from shoplens.models.extract_features import load_features_file
        from shoplens.search.index import index_for

        return index_for(load_features_file(), kind, threshold, precision)

    info = run_stage("index", index_dir(), index_key(kind, threshold, precision), build, force, _echo_stage)
    if info:
        kind = f"{info['kind']} {info['precision']}" if info.get("precision") == "int8" else info["kind"]
        click.echo(f"built an {kind} index of {info['items']:,} items in {info['build_seconds']:.1f} s: "
                   f"{_rel(index_dir())}/")


def _filters(ctx, param, values):
    """``FIELD=VALUE`` options (or comma-separated lists of them) -> ``{field: [values]}``."""
    filters = {}
    for pair in (p.strip() for value in values for p in str(value).split(",") if p.strip()):
        field, sep, value = pair.partition("=")
        if not sep or not field.strip() or not value.strip():
            raise click.BadParameter(f"expected FIELD=VALUE like gender=Men, got '{pair}'")
        filters.setdefault(field.strip(), []).append(value.strip())
    return filters


_text_model = option("--text-model", var="SEARCH_TEXT_MODEL", default=config.SEARCH_TEXT_MODEL,
                     help="The text model that reads queries and titles, <classmode>_text.")


@main.command("search")
@option("--image", type=click.Path(dir_okay=False), remember=False, help="Find products similar to this photo.")
@option("--text", var="QUERY", remember=False, help="Find products for this description.")
@option("--item", "item_id", var="ITEM", remember=False, help="Find products similar to this product id.")
@option("-k", "--k", "k", default=config.K, type=click.IntRange(min=1), remember=False, help="Results to show.")
@option("--same-category", is_flag=True, remember=False,
        help="With --image: only products of the predicted category.")
@option("--filter", "filters", var="FILTERS", multiple=True, callback=_filters, remember=False,
        help="FIELD=VALUE, e.g. gender=Men; repeat it or separate pairs with commas.")
@option("--category", var="CATEGORY", remember=False,
        help="Only this category or its subcategories, e.g. 'Footwear > Shoes'.")
@click.option("--offset", default=0, type=click.IntRange(min=0), help="Without a query: products to skip.")
@click.option("--limit", default=config.BROWSE_LIMIT, type=click.IntRange(min=1),
              help="Without a query: products to list.")
@option("--grid", type=_OutputFile(), remember=False, help="Also draw the query and its results into this PNG.")
@_text_model
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def search_command(image, text, item_id, k, same_category, filters, category, offset, limit, grid, text_model,
                   as_json):
    """Search the image repository by photo, text or product; without one, list the products that match."""
    if sum(bool(q) for q in (image, text, item_id)) > 1:
        raise click.UsageError("give one of --image, --text and --item")
    if same_category and not image:
        raise click.UsageError("--same-category needs --image (the category is the photo's predicted one)")
    if image and not Path(image).is_file():
        raise ShoplensError(f"{image}: no such image file")
    from shoplens.search.repository import Repository

    repository = Repository.load(text_model=text_model, load_models=False)
    repository.check_filters(filters, category)  # a mistake is said before any model loads
    if image or text:
        _tensorflow()
    prediction, reading, lines = None, None, []
    if image:
        prediction, results = repository.similar_to_image(image, k, same_category, filters, category)
        cropped = "; in the box: the crop searched with" if prediction["crop"] else ""
        row = {"image": image, "caption": f"predicted: {prediction['category']}{cropped}", "results": results,
               "crop": prediction["crop"]}
        lines.append(f"predicted category: {prediction['category']} ({prediction['probability']:.2f}, "
                     f"{prediction['model']})")
        if prediction["crop"]:
            crop = prediction["crop"]
            lines.append(f"cropped to the product found at x0,y0,x1,y1 = {','.join(map(str, crop['box']))} of the "
                         f"{crop['width']}x{crop['height']} photo (CROP=auto)")
    elif text:
        reading, results = repository.search_text(text, k, filters, category)
        prediction = reading["prediction"]
        row = {"text": text, "results": results}
        lines.append(reading["text"])
        if not results:
            lines.append(f"nothing matches '{text}'" + (" with these filters" if filters or category else ""))
    elif item_id:
        query = repository.item(item_id)
        results = repository.similar_to_item(item_id, k, filters, category)
        row = {"image": query["image_path"], "caption": f"{query['id']}: {query['category']}", "results": results}
        lines.append(f"similar to {query['id']}: {query['title']} ({query['category']})")
    else:
        total, results = repository.browse(filters, category, offset, limit)
        row = {"results": results}
        lines.append(f"{total:,} products match; showing {offset + 1 if results else 0}-{offset + len(results)}")
    if as_json:
        click.echo(json.dumps({"reading": reading, "results": results} if text else
                              {"prediction": prediction, "results": results}, indent=2))
    else:
        click.echo("\n".join([*lines, format_results(results)] if results or not text else lines))
    if grid:
        from shoplens.visualization.search_figures import plot_search_grid

        plot_search_grid([row], grid, title=f"{repository.catalog_name}: {lines[0]}")
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
@_force
def evaluate_search_command(force):
    """Query every test product against the train products; publish reports/<catalog>/search/metrics.json."""
    from shoplens.data.make_dataset import load_summary
    from shoplens.pipeline import evaluate_search_key, search_metrics_dir
    from shoplens.search.evaluate import format_search_report

    folder = search_metrics_dir(load_summary()["catalog_name"])

    def build():
        _tensorflow()
        from shoplens.search.evaluate import evaluate_search
        from shoplens.search.repository import Repository

        return evaluate_search(Repository.load(load_models=False))

    run_stage("search evaluation", folder, evaluate_search_key(), build, force, _echo_stage)
    click.echo(format_search_report(json.loads((folder / "metrics.json").read_text())))


@main.command()
@option("--folds", var="AUDIT_FOLDS", default=config.AUDIT_FOLDS, type=click.IntRange(min=2),
        help="Folds of the out-of-fold probabilities.")
@option("--hash-distance", var="AUDIT_HASH_DISTANCE", default=config.AUDIT_HASH_DISTANCE, type=click.IntRange(0, 32),
        help="Bits two photos' perceptual hashes may differ by and still be one photo.")
@option("--pixel-difference", var="AUDIT_PIXEL_DIFFERENCE", default=config.AUDIT_PIXEL_DIFFERENCE,
        type=click.FloatRange(0, 255), help="Mean absolute difference of two such photos' thumbnails (0-255).")
@_force
def audit(folds, hash_distance, pixel_difference, force):
    """Find products filed under a wrong category, and duplicates; publish reports/<catalog>/audit/."""
    from shoplens.audit.audit import describe_audit, image_features_folder
    from shoplens.data.make_dataset import load_summary
    from shoplens.pipeline import audit_dir, audit_key

    folder = audit_dir(load_summary()["catalog_name"])
    seed = resolved("SEED")
    features = image_features_folder()
    key = audit_key(folds, hash_distance, pixel_difference, seed, features.name if features else None)

    def build():
        from shoplens.audit.audit import audit as run_audit

        return run_audit(folds, hash_distance, pixel_difference, seed)

    run_stage("audit", folder, key, build, force, _echo_stage)
    click.echo(describe_audit(json.loads((folder / "summary.json").read_text())))
    click.echo(f"reports in {_rel(folder)}/")


# Where the gallery listens when neither option is given: SHOPLENS_HOST and SHOPLENS_PORT, as its container
# image sets them, else the defaults.
@main.command()
@option("--host", default=lambda: os.environ.get("SHOPLENS_HOST", config.HOST), remember=False,
        show_default=f"$SHOPLENS_HOST, else {config.HOST}",
        help="Address to listen on; 0.0.0.0 for every network interface.")
@option("--port", default=lambda: os.environ.get("SHOPLENS_PORT", config.PORT), type=click.IntRange(0, 65535),
        remember=False, show_default=f"$SHOPLENS_PORT, else {config.PORT}", help="Port; 0 picks a free one.")
@option("--threads", var="SERVE_THREADS", default=config.SERVE_THREADS, type=click.IntRange(min=1), remember=False,
        help="Worker threads.")
@option("--page-size", default=config.PAGE_SIZE, type=click.IntRange(1, config.MAX_PAGE_SIZE), remember=False,
        help="Products per page.")
@_text_model
def serve(host, port, threads, page_size, text_model):
    """Serve the web gallery and its JSON API (waitress), with the models, embeddings and index loaded once."""
    # One BLAS thread per call: waitress's threads already share the cores, and BLAS splitting each small
    # query product over threads of its own makes it wait for a busy core (8 ms, a scheduler time slice, for
    # a product of a tenth of a millisecond). Set through threadpoolctl: numpy has loaded BLAS already.
    from threadpoolctl import threadpool_limits
    from waitress import create_server

    from shoplens.gallery.app import create_app
    from shoplens.search.repository import Repository

    repository = Repository.load(text_model=text_model, load_models=False)
    _tensorflow()
    repository.load_models()
    threadpool_limits(1, user_api="blas")  # every BLAS loaded by now: numpy's, and FAISS's if it has its own
    app = create_app(repository, page_size=page_size)
    server = create_server(app, host=host, port=port, threads=threads)
    listening = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    for address, bound in listening:
        address = f"[{address}]" if ":" in address else address  # an IPv6 address in a URL
        click.echo(f"gallery of {len(repository):,} products of {repository.catalog_name} on "
                   f"http://{address}:{bound}/ (Ctrl+C stops it)")
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


@main.command("params")
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
def params_command(assignments):
    """Show the project's options (or set some: NAME=VALUE, as on the make command line)."""
    given = params.given()
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep:
            raise click.UsageError(f"expected NAME=VALUE, got '{assignment}'")
        given[name.strip().upper()] = value
    options = {}
    for command_name, command, param in _project_options():
        options.setdefault(param.var, (command_name, command, param, []))[3].append(command_name)
    updates = {}
    for name, value in given.items():
        if name in GROUP_VARIABLES:
            continue
        if name not in options:
            raise ShoplensError(f"unknown option {name}; the options are {', '.join(sorted(options))}")
        command_name, command, param, _ = options[name]
        if not param.remember:
            raise ShoplensError(f"{name} is given per run (to `make search` or `make serve`), not remembered")
        _check(command_name, command, param, value, "the command line")
        updates[name] = _stored(param.process_value(click.Context(command, info_name=command_name),
                                                    _as_given(param, value)))
    if updates:
        params.save(updates, order=list(options))
    stored = params.load()
    rows = []
    for name, (command_name, command, param, used_by) in options.items():
        if not param.remember:
            continue
        default = param.get_default(click.Context(command, info_name=command_name), call=True)
        value, source = (stored[name], config.PARAMS_FILE.name) if name in stored else (default, "default")
        shown = "" if value is None else str(_stored(value))
        rows.append((name, json.dumps(shown) if shown != shown.strip() else shown, source,
                     ", ".join(dict.fromkeys(used_by))))
    widths = [max(len(str(row[i])) for row in [("option", "value", "from", "used by"), *rows]) for i in range(4)]
    for row in [("option", "value", "from", "used by"), *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def describe_data(summary):
    """A few lines a person reads after make_dataset."""
    excluded = ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in summary["excluded"].items()) or "none"
    splits = " / ".join(f"{name} {n:,}" for name, n in summary["splits"].items())
    classes = ", ".join(f"{name} {n}" for name, n in summary["classes_per_level"].items())
    kinds = " and ".join(k for k, has in (("titles", summary["has_titles"]), ("images", summary["has_images"])) if has)
    lines = [
        f"read {summary['rows_read']:,} rows from {summary['csv_path']} ({summary['layout']} layout, {kinds})",
        f"excluded: {excluded}",
    ]
    if summary.get("malformed_lines"):
        lines[-1] += f" (malformed rows at lines {', '.join(map(str, summary['malformed_lines'][:5]))}" + (
            ", ...)" if len(summary["malformed_lines"]) > 5 else ")")
    if summary["rows_dropped_by_subsample"]:
        lines.append(f"subsampled away: {summary['rows_dropped_by_subsample']:,}")
    lines += [
        f"kept {summary['rows_kept']:,}: {splits}",
        f"classes per level: {classes}",
        *([f"held out of training ({config.UNSEEN_SPLIT}): {len(summary['unseen_classes'])} categories, "
           + ", ".join(summary["unseen_classes"][:8]) + (", ..." if len(summary["unseen_classes"]) > 8 else "")]
          if summary.get("unseen_classes") else []),
        f"wrote {_rel(config.SPLITS_DIR)}/{{{','.join(summary['splits'])}}}.parquet and summary.json "
        f"(data version {summary['data_version']}, {summary['seconds']:.1f} s)",
    ]
    return "\n".join(lines)


def describe_features(summary):
    """A few lines a person reads after build_features."""
    made = []
    if summary["has_images"]:
        made.append("images " + ", ".join(f"{s}x{s}" for s in summary["image_sizes"]))
    if summary["has_titles"]:
        made.append(f"vocabulary of {summary['vocab_size']:,} tokens")
    made.append("label encoders for " + ", ".join(summary["levels"]))
    return f"features: {'; '.join(made)} in {_rel(config.FEATURES_DIR)} ({summary['seconds']:.1f} s)"


def _rel(path):
    """A path as the user would type it: relative to the current folder where possible."""
    try:
        return Path(path).absolute().relative_to(Path.cwd())
    except ValueError:
        return path


if __name__ == "__main__":
    main()
