"""Every default of the pipeline in one place: paths, data options, feature options.

The Makefile and the command line take their defaults from here, so changing a
value here changes it everywhere. Paths are relative to the project directory,
which is the current working directory unless ``SHOPLENS_PROJECT_DIR`` is set.
"""
import os
from pathlib import Path

PROJECT_DIR = Path(os.environ.get("SHOPLENS_PROJECT_DIR", ".")).absolute()

DATA_DIR = PROJECT_DIR / "data"
RAW_DIR = DATA_DIR / "raw"
EXTERNAL_DIR = DATA_DIR / "external"
INTERIM_DIR = DATA_DIR / "interim"
PROCESSED_DIR = DATA_DIR / "processed"
MODELS_DIR = PROJECT_DIR / "models"
LOGS_DIR = PROJECT_DIR / "logs"
REPORTS_DIR = PROJECT_DIR / "reports"
BENCHMARKS_DIR = REPORTS_DIR / "benchmarks"
# The options given to make or shoplens, remembered for every later command (see shoplens.params).
PARAMS_FILE = PROJECT_DIR / "params.yaml"
# The project lock and other state of no interest to users.
STATE_DIR = PROJECT_DIR / ".shoplens"

# Where each stage publishes its outputs: one folder, replaced as a whole (shoplens.outputs.publish).
# A trained model's folder is MODELS_DIR / "<classmode>_<modelmode>".
CLEAN_CATALOG_DIR = INTERIM_DIR / "catalog"  # the validated, cleaned catalog, reused by later make data runs
SPLITS_DIR = PROCESSED_DIR / "splits"
FEATURES_DIR = PROCESSED_DIR / "features"
EMBEDDINGS_DIR = MODELS_DIR / "embeddings"
INDEX_DIR = MODELS_DIR / "search_index"

# Demo catalog (make demo, tests, benchmarks)
DEMO_CATALOG_DIR = RAW_DIR / "demo"
DEMO_N = 2000
DEMO_SEED = 42
DEMO_IMAGE_SIZE = 128
DEMO_PLANTED = 0.02  # share of the demo's products filed under a wrong category, and again as many duplicated
# Share of the demo's photos that are lifestyle shots: the product small and off-centre on a busy background, its
# true box in data/raw/demo/boxes.csv, for CROP=auto to find (make benchmark-crops).
DEMO_CLUTTER = 0.0
# What make demo gives make: the demo catalog and a model that needs no weights file.
DEMO_OPTIONS = {"CATALOG": "demo", "BACKBONE": "simple", "WEIGHTS": "none", "EPOCHS": 16}

# make_dataset
CATALOG = "demo"  # the demo catalog, made on demand in DEMO_CATALOG_DIR; or a catalog CSV or folder
CATEGORY_SEP = " > "
LEVELS = 3
LEVEL_NAMES = ("product_category", "product_type", "product_details")
MIN_ITEMS = 10
SUBSAMPLE = 1.0
SPLIT_RATIOS = (0.7, 0.15, 0.15)
SPLITS = ("train", "validate", "test")
SEED = 42
LANGUAGE = "english"
# Hold out UNSEEN_SHARE of the last level's classes (seeded by SEED) from every split: their products form the
# "unseen" split, which no model trains on, and `make evaluate_search` measures how well the embeddings retrieve
# products of categories the model never saw (Recall@k, MAP@R), as deep metric learning is evaluated.
UNSEEN = False
UNSEEN_SHARE = 0.2
UNSEEN_SPLIT = "unseen"
# Items sharing a cleaned title or an image (bytes or perceptual hash) stay in one split: "title,image",
# "title", "image" or "none" (a plain stratified split).
GROUP_SPLIT = "title,image"

# Column names of the two layouts read out of the box.
GENERIC_COLUMNS = {"id": "id", "title": "title", "image": "image", "category": "category"}
FASHION_COLUMNS = {
    "id": "id",
    "title": "productDisplayName",
    "levels": ("masterCategory", "subCategory", "articleType"),
    # Attribute columns renamed, so that a filter has one name in every catalog (the demo's is "colour").
    "renamed": {"baseColour": "colour"},
}

# Images: one larger than MAX_PIXELS is refused before it is decoded (a small PNG can hold a huge one).
MAX_PIXELS = 40_000_000

# build_features
IMAGE_SIZE = 64  # what the backbones trained from scratch (BACKBONE=simple or vit) read
# What a pretrained backbone reads; made only when BACKBONE is one. 224 px is what MobileNetV2's ImageNet weights
# were trained at; frozen on fashion-products it reached 0.882 at level 3 on the validate split, 0.868 at 160 px.
PRETRAINED_IMAGE_SIZE = 224
MAX_IMAGE_SIZE = 1024  # an array of 100,000 images at 1024 px takes 300 GB
VOCAB_SIZE = 5000
TITLE_LENGTH = 16

# train_model
CLASSMODE = "multilabel"  # one softmax per level; "multiclass": one over the full paths
MODELMODE = "combined"  # "image", "text" or "combined"
BACKBONE = "vgg16"  # a keras.applications backbone, or "simple" or "vit" (shoplens.models.backbones)
# BACKBONE=vit: a Vision Transformer (keras_hub's ViTBackbone) trained from scratch on the IMAGE_SIZE images, sized
# for a CPU. 8 px patches make a 64 px image 64 tokens (an 8 x 8 grid; attention costs the square of their number:
# with 4 px patches, 256 tokens, it costs 16 times as much), and 4 layers of width 128 (4 heads of 32, an MLP twice
# as wide; ViT-Tiny is 192 wide and 12 deep) hold 0.56 M weights to the small CNN's 0.86 M: on 2 cores it trained
# 207 images/s to the CNN's 270 (bfloat16, 64 px), so an epoch takes about a third longer. A ViT from scratch needs
# far more images than a catalog's thousands to beat a CNN (Dosovitskiy et al., 2021): a larger one is not the way.
VIT_PATCH_SIZE = 8
VIT_LAYERS = 4
VIT_HIDDEN_DIM = 128
VIT_HEADS = 4
VIT_MLP_DIM = 256
WEIGHTS = "imagenet"  # "imagenet", "none" or a weights file
FINETUNE = False  # train the top FINETUNE_BLOCKS blocks of a pretrained backbone too, after its heads
# Chosen on the validate split of fashion-products: MobileNetV2 at 224 px reached 0.905 at level 3 (three
# seeds) with 5 epochs at 3e-4, 0.898 at 1e-4, and no more with 10 epochs; 0.882 frozen. The benchmark's
# "fine-tuned" rows reproduce these: python benchmarks/models.py --group-splits title,image --rows "..."
FINETUNE_BLOCKS = 3
FINETUNE_EPOCHS = 5
FINETUNE_LEARNING_RATE = 3e-4
TEXT_ENCODER = "bag"  # "bag", "cnn" or "lstm"
# The heads of a model with an image tower: "softmax" (dense layers), or "normsoftmax": cosine classifiers over the
# L2-normalised embedding, at a temperature, with an optional cosine margin, which trains the embedding search reads
# by deep metric learning (shoplens.models.normsoftmax). TEMPERATURE: the paper's best on its three datasets.
LOSSES = ("softmax", "normsoftmax")
LOSS = "softmax"
TEMPERATURE = 0.05
MARGIN = 0.0
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
# Object-centred crops of an image model (MODELMODE=image, the one search uses; shoplens.models.localise). "auto":
# once trained on the whole photos, the model finds the product in each of them (by contrast with a plain
# background, else by its own class activation map) and trains again as long on the photos and their crops; it then
# classifies and embeds the crop of every photo it reads, the catalog's and the queries'. "none": whole photos.
CROP = "none"
CROPS = ("none", "auto")

# Worker processes for image decoding; None means one per core.
WORKERS = None

# search (extract_features, the index, queries)
SEARCH_IMAGE_MODEL = "multilabel_image"  # photos are classified and embedded from the photo alone
SEARCH_TEXT_MODEL = "multilabel_text"  # predicts the category a text query means
EMBEDDING_LAYER = "image_embedding"  # the layer before the heads
EXTRACT_BATCH_SIZE = 256
SHARD = 0  # extraction of a contiguous slice of the items: shard SHARD of NUM_SHARDS, merged by merge_features
NUM_SHARDS = 1
EXTRACTED_FEATURES = EMBEDDINGS_DIR / "extracted_features.npz"
SEARCH_INDEX = INDEX_DIR / "search_index.json"  # and search_index.faiss for an approximate index
INDEX = "auto"  # "exact", "faiss", or "auto": faiss from INDEX_FAISS_THRESHOLD items on
INDEX_FAISS_THRESHOLD = 200_000
INDEX_PRECISION = "float32"  # the exact index's scan: "float32", or "int8" at a quarter of the memory and bytes read
FAISS_NLIST = None  # inverted lists of the FAISS index; None: 4 x sqrt(items)
FAISS_NPROBE = 16  # lists scanned per query: more is slower and finds more of the true neighbours
K = 5
BROWSE_LIMIT = 20  # products listed by a query with no text or photo
# Text search: a product's score is the weighted mean of the parts a query has (shoplens.search.text_search):
# BM25 of its words against the title, the share of the attribute values it names (colour, gender...) the
# product has, and the text model's probability of the product's category path. The best on the validate queries
# of `make benchmark-text-search` (P@10 0.973) of those where the type (title and category) weighs at least as
# much as the attributes, so that "blue running shoes" lists white running shoes before blue shirts.
TEXT_SEARCH_WEIGHTS = {"title": 0.2, "attributes": 0.4, "category": 0.2}
# A query word that no title or attribute has, of SPELLING_MIN_LENGTH letters or more, is read as the closest
# known word at least SPELLING_CUTOFF similar (difflib ratio): 0.75 lets two swapped letters through ("bleu").
SPELLING_CUTOFF = 0.75
SPELLING_MIN_LENGTH = 4

# audit (make audit)
AUDIT_FOLDS = 5  # out-of-fold probabilities: each product judged by models trained on the other folds
# Two photos are one when their 64-bit perceptual hashes differ by at most AUDIT_HASH_DISTANCE bits and their
# 16-pixel thumbnails by at most AUDIT_PIXEL_DIFFERENCE (mean absolute difference, 0-255). On fashion-products,
# copies re-encoded at JPEG quality 60, resized to 90 % or mirrored differed by 0 to 4 bits and by at most 0.8;
# of the 11,071 other pairs within 4 bits, 97 were within 2 (most of them copies of one file) and 238 within 3.
AUDIT_HASH_DISTANCE = 4
AUDIT_PIXEL_DIFFERENCE = 2.0
AUDIT_FIGURE_ITEMS = 24  # flagged products in reports/<catalog>/audit/label_issues.png

# gallery (make serve)
HOST = "127.0.0.1"
PORT = 5000
# waitress worker threads. A search is mostly Python, which holds the GIL, so threads add no throughput to the
# API and each NumPy call that releases the GIL may hand it to another thread (under 20 clients on 2 cores, the
# demo's /api/search answered 740-1,050 requests/s with 1 thread, 440-770 with 2 or 4, and 8 were slower still).
# One thread would make every request wait behind a photo being classified (MobileNetV2: about 30 ms here,
# during which TensorFlow releases the GIL) or a thumbnail being made; 4 keeps those from holding up the rest.
SERVE_THREADS = 4
PAGE_SIZE = 24  # products per page of the gallery
MAX_PAGE_SIZE = 200  # the most an API client may ask for in one page
GALLERY_K = 12  # similar products shown for a photo or a product
MAX_K = 100  # the most results an API client may ask for
MAX_UPLOAD_MB = 10
THUMBNAILS_DIR = INTERIM_DIR / "thumbnails"
THUMBNAIL_SIZE = 256
STATIC_MAX_AGE = 24 * 3600  # seconds browsers may keep thumbnails, images and static files


def splits_dir(processed_dir=PROCESSED_DIR):
    """The splits' folder under a processed-data folder."""
    return Path(processed_dir) / SPLITS_DIR.name


def features_dir(processed_dir=PROCESSED_DIR):
    """The features' folder under a processed-data folder."""
    return Path(processed_dir) / FEATURES_DIR.name


def project_relative(path):
    """A path as outputs store it: relative to the project folder if it lies inside, else absolute.

    Links are not resolved: a stage folder is a link whose target changes with every run.
    """
    path = os.path.abspath(path)
    relative = os.path.relpath(path, PROJECT_DIR)
    return path if relative == ".." or relative.startswith(".." + os.sep) else relative


def project_path(path):
    """A path stored by :func:`project_relative`, absolute again, whatever the working folder."""
    return Path(path) if os.path.isabs(path) else PROJECT_DIR / path


def level_names(levels=LEVELS):
    """Names of the category levels: the three of the original system, or level_1..n."""
    if levels == len(LEVEL_NAMES):
        return list(LEVEL_NAMES)
    return [f"level_{i + 1}" for i in range(levels)]


def make_variables():
    """What the Makefile itself needs from here, as Make assignments; every other option is read by
    the shoplens commands (from params.yaml, or the make command line)."""
    demo = " ".join(f"{name}={value}" for name, value in DEMO_OPTIONS.items())
    return f"DEMO_OPTIONS := {demo}\nDEMO_DIR := {DEMO_CATALOG_DIR.relative_to(PROJECT_DIR)}"


if __name__ == "__main__":
    print(make_variables())
