"""Every default of the pipeline in one place: paths, data options, feature options.

The Makefile and the command line take their defaults from here, so changing a
value here changes it everywhere. Paths are relative to the project directory,
which is the current working directory unless ``SHOPLENS_PROJECT_DIR`` is set.
"""
import os
from pathlib import Path

PROJECT_DIR = Path(os.environ.get("SHOPLENS_PROJECT_DIR", ".")).resolve()

DATA_DIR = PROJECT_DIR / "data"
RAW_DIR = DATA_DIR / "raw"
EXTERNAL_DIR = DATA_DIR / "external"
INTERIM_DIR = DATA_DIR / "interim"
PROCESSED_DIR = DATA_DIR / "processed"
FEATURES_DIR = PROCESSED_DIR / "features"
MODELS_DIR = PROJECT_DIR / "models"
LOGS_DIR = PROJECT_DIR / "logs"
REPORTS_DIR = PROJECT_DIR / "reports"
FIGURES_DIR = REPORTS_DIR / "figures"
BENCHMARKS_DIR = REPORTS_DIR / "benchmarks"

# Demo catalog (make demo, tests, benchmarks)
DEMO_CATALOG_DIR = RAW_DIR / "demo"
DEMO_N = 2000
DEMO_SEED = 42
DEMO_IMAGE_SIZE = 128
DEMO_EPOCHS = 16  # the cosine schedule needs them: at 8 the demo's combined model reached 0.86 at level 3, at 16 0.96

# make_dataset
CATALOG = DEMO_CATALOG_DIR
CATEGORY_SEP = " > "
LEVELS = 3
LEVEL_NAMES = ("product_category", "product_type", "product_details")
MIN_ITEMS = 10
SUBSAMPLE = 1.0
SPLIT_RATIOS = (0.7, 0.15, 0.15)
SPLITS = ("train", "validate", "test")
SEED = 42
LANGUAGE = "english"

# Column names of the two layouts read out of the box.
GENERIC_COLUMNS = {"id": "id", "title": "title", "image": "image", "category": "category"}
FASHION_COLUMNS = {
    "id": "id",
    "title": "productDisplayName",
    "levels": ("masterCategory", "subCategory", "articleType"),
    "attributes": ("gender", "baseColour", "season", "year", "usage"),
}

# build_features
IMAGE_SIZE = 64
VOCAB_SIZE = 5000
TITLE_LENGTH = 16

# train_model
CLASSMODE = "multilabel"  # one softmax per level; "multiclass": one over the full paths
MODELMODE = "combined"  # "image", "text" or "combined"
BACKBONE = "vgg16"  # a keras.applications backbone or "simple"
WEIGHTS = "imagenet"  # "imagenet", "none" or a weights file
FINETUNE = False
TEXT_ENCODER = "bag"  # "bag", "cnn" or "lstm"
EPOCHS = 45  # the length of the cosine learning-rate schedule
BATCH_SIZE = 64
# Adam's rate per replica; "auto" takes the model mode's own from LEARNING_RATES. Titles need the
# higher rate: at 1e-3 the text tower is still learning when the image tower starts to overfit;
# the small image CNN, in turn, does worse at 3e-3.
LEARNING_RATE = "auto"
LEARNING_RATES = {"image": 1e-3, "text": 3e-3, "combined": 3e-3}
# Epochs without a better validation loss before stopping, counted in the second half of EPOCHS only: while
# the rate is high a from-scratch CNN's validation loss jumps about, at times for 8 epochs on end.
PATIENCE = 10
CLASS_WEIGHTS = False
# Compute precision: "auto" picks bfloat16 on CPUs with native support, float16 on a GPU, else float32.
PRECISION = "auto"
# "default": one process; "mirrored": all local GPUs (or the CPU); "multiworker": the machines in TF_CONFIG.
STRATEGY = "default"

# Worker processes for image decoding; None means one per core.
WORKERS = None

# search (extract_features, the index, queries)
SEARCH_IMAGE_MODEL = "multilabel_image"  # photos are classified and embedded from the photo alone
SEARCH_TEXT_MODEL = "multilabel_text"  # predicts the category a text query means
EMBEDDING_LAYER = "image_embedding"  # the layer before the heads
EXTRACT_BATCH_SIZE = 256
SHARD = 0  # extraction of a contiguous slice of the items: shard SHARD of NUM_SHARDS, merged by merge_features
NUM_SHARDS = 1
EXTRACTED_FEATURES = MODELS_DIR / "extracted_features.npz"
SEARCH_INDEX = MODELS_DIR / "search_index.json"  # and search_index.faiss for an approximate index
INDEX = "auto"  # "exact", "faiss", or "auto": faiss from INDEX_FAISS_THRESHOLD items on
INDEX_FAISS_THRESHOLD = 200_000
FAISS_NLIST = None  # inverted lists of the FAISS index; None: 4 x sqrt(items)
FAISS_NPROBE = 16  # lists scanned per query: more is slower and finds more of the true neighbours
K = 5
BROWSE_LIMIT = 20  # products listed by a query with no text or photo
TEXT_CATEGORY_WEIGHT = 0.5  # text search score = keyword score + this x predicted probability of the item's path
SEARCH_METRICS = REPORTS_DIR / "metrics" / "search.json"

# gallery (make serve)
HOST = "127.0.0.1"
PORT = 5000
SERVE_THREADS = 8  # waitress worker threads; requests mostly wait on numpy and TensorFlow, which release the GIL
PAGE_SIZE = 24  # products per page of the gallery
MAX_PAGE_SIZE = 200  # the most an API client may ask for in one page
GALLERY_K = 12  # similar products shown for a photo or a product
MAX_K = 100  # the most results an API client may ask for
MAX_UPLOAD_MB = 10
THUMBNAILS_DIR = INTERIM_DIR / "thumbnails"
THUMBNAIL_SIZE = 256
STATIC_MAX_AGE = 24 * 3600  # seconds browsers may keep thumbnails, images and static files


def level_names(levels=LEVELS):
    """Names of the category levels: the three of the original system, or level_1..n."""
    if levels == len(LEVEL_NAMES):
        return list(LEVEL_NAMES)
    return [f"level_{i + 1}" for i in range(levels)]


def make_defaults():
    """The defaults above as Make variable assignments, so the Makefile never repeats them."""
    def rel(path):
        return path.relative_to(PROJECT_DIR) if path.is_relative_to(PROJECT_DIR) else path

    values = {
        "DEMO_DIR": rel(DEMO_CATALOG_DIR),
        "DEMO_N": DEMO_N,
        "DEMO_SEED": DEMO_SEED,
        "DEMO_EPOCHS": DEMO_EPOCHS,
        "CATALOG": rel(CATALOG),
        "LEVELS": LEVELS,
        "MIN_ITEMS": MIN_ITEMS,
        "SUBSAMPLE": SUBSAMPLE,
        "SPLIT": ",".join(map(str, SPLIT_RATIOS)),
        "SEED": SEED,
        "LANGUAGE": LANGUAGE,
        "IMAGE_SIZE": IMAGE_SIZE,
        "VOCAB_SIZE": VOCAB_SIZE,
        "TITLE_LENGTH": TITLE_LENGTH,
        "CLASSMODE": CLASSMODE,
        "MODELMODE": MODELMODE,
        "BACKBONE": BACKBONE,
        "WEIGHTS": WEIGHTS,
        "FINETUNE": int(FINETUNE),
        "TEXT_ENCODER": TEXT_ENCODER,
        "EPOCHS": EPOCHS,
        "BATCH_SIZE": BATCH_SIZE,
        "LEARNING_RATE": LEARNING_RATE,
        "PATIENCE": PATIENCE,
        "CLASS_WEIGHTS": int(CLASS_WEIGHTS),
        "PRECISION": PRECISION,
        "STRATEGY": STRATEGY,
        "SEARCH_IMAGE_MODEL": SEARCH_IMAGE_MODEL,
        "SEARCH_TEXT_MODEL": SEARCH_TEXT_MODEL,
        "EMBEDDING_LAYER": EMBEDDING_LAYER,
        "SHARD": SHARD,
        "NUM_SHARDS": NUM_SHARDS,
        "INDEX": INDEX,
        "INDEX_FAISS_THRESHOLD": INDEX_FAISS_THRESHOLD,
        "K": K,
        "HOST": HOST,
        "PORT": PORT,
        "SERVE_THREADS": SERVE_THREADS,
        "PAGE_SIZE": PAGE_SIZE,
    }
    return "\n".join(f"{name} ?= {value}" for name, value in values.items())


if __name__ == "__main__":
    print(make_defaults())
