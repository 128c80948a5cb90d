"""A synthetic fashion web-shop catalog, deterministic for a seed.

The catalog exists so that the pipeline can be demonstrated, tested and
benchmarked without downloading anything, while still behaving like a real shop:

* a 3-level category tree (``Apparel > Topwear > Tshirts``) with strongly
  imbalanced leaves;
* one product photo per item in which the product type is recognisable from its
  silhouette (every leaf has its own shape), drawn in the item's colour with a
  pattern, details, a drop shadow and sensor-like noise on a light background;
* attributes (gender, season, colour) that are plausible for the product type;
* noisy titles: brands, synonyms, filler words, typos, odd capitalisation, some
  without the product type and a few empty.

Everything random is drawn from ``numpy`` generators keyed by the seed: the
catalog rows from one generator in the parent process, each image from its own
generator keyed by ``(seed, index)``, so the output is byte-identical whatever
the number of worker processes.
"""
import csv
import functools
import json
import math
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from shoplens.config import CATEGORY_SEP, DEMO_CATALOG_DIR
from shoplens.outputs import atomic_path, publish
from shoplens.pipeline import demo_catalog_key
from shoplens.progress import progress_bar
from shoplens.stages import version_of

#: Level 1 -> level 2 -> leaf -> relative frequency of the leaf. The weights
#: make the catalog imbalanced the way shops are (many T-shirts, few jumpsuits).
CATEGORY_TREE = {
    "Apparel": {
        "Topwear": {"Tshirts": 40.0, "Shirts": 24.0, "Tops": 16.0, "Sweaters": 8.0},
        "Bottomwear": {"Trousers": 12.0, "Jeans": 16.0, "Shorts": 8.0, "Skirts": 5.0},
        "Dresses": {"Dresses": 11.0, "Jumpsuits": 1.0},
        "Outerwear": {"Jackets": 7.0, "Coats": 3.0},
    },
    "Footwear": {
        "Shoes": {"Sports Shoes": 20.0, "Formal Shoes": 5.0, "Casual Shoes": 13.0, "Boots": 4.0},
        "Sandals": {"Sandals": 6.0, "Flip Flops": 4.0},
        "Heels": {"Heels": 6.0},
    },
    "Accessories": {
        "Bags": {"Handbags": 10.0, "Backpacks": 5.0, "Wallets": 1.0},
        "Watches": {"Watches": 14.0},
        "Headwear": {"Caps": 3.0, "Hats": 2.0},
        "Eyewear": {"Sunglasses": 5.0},
        "Belts": {"Belts": 3.0},
    },
}

GENDERS = ("Men", "Women", "Boys", "Girls", "Unisex")
SEASONS = ("Summer", "Winter", "Fall", "Spring")
PATTERNS = ("Solid", "Stripes", "Checks", "Dots")

#: Colour name -> RGB of the colour as drawn.
COLOURS = {
    "Black": (32, 32, 35),
    "White": (246, 246, 243),
    "Navy Blue": (30, 42, 92),
    "Blue": (45, 105, 205),
    "Red": (200, 32, 42),
    "Green": (40, 140, 62),
    "Yellow": (242, 206, 42),
    "Grey": (128, 128, 132),
    "Pink": (240, 142, 182),
    "Brown": (122, 74, 42),
    "Purple": (112, 52, 142),
    "Orange": (240, 132, 32),
    "Beige": (218, 198, 158),
    "Maroon": (122, 22, 42),
    "Olive": (110, 120, 52),
    "Teal": (22, 128, 128),
}

# Per-leaf plausibility of (Men, Women, Boys, Girls, Unisex) and of
# (Summer, Winter, Fall, Spring); rows need not sum to one.
_GENDER_WEIGHTS = {
    "Tshirts": (40, 30, 12, 10, 8),
    "Shirts": (55, 35, 6, 4, 0),
    "Tops": (0, 85, 0, 15, 0),
    "Sweaters": (40, 40, 7, 7, 6),
    "Trousers": (50, 40, 5, 5, 0),
    "Jeans": (45, 40, 7, 8, 0),
    "Shorts": (45, 30, 12, 8, 5),
    "Skirts": (0, 85, 0, 15, 0),
    "Dresses": (0, 85, 0, 15, 0),
    "Jumpsuits": (0, 90, 0, 10, 0),
    "Jackets": (50, 35, 7, 5, 3),
    "Coats": (40, 50, 4, 6, 0),
    "Sports Shoes": (45, 30, 8, 5, 12),
    "Formal Shoes": (85, 10, 5, 0, 0),
    "Casual Shoes": (50, 30, 8, 7, 5),
    "Boots": (40, 45, 5, 5, 5),
    "Sandals": (35, 45, 7, 8, 5),
    "Flip Flops": (35, 35, 8, 7, 15),
    "Heels": (0, 95, 0, 5, 0),
    "Handbags": (0, 95, 0, 5, 0),
    "Backpacks": (20, 15, 8, 7, 50),
    "Wallets": (60, 30, 0, 0, 10),
    "Watches": (35, 30, 3, 2, 30),
    "Caps": (25, 10, 10, 5, 50),
    "Hats": (20, 35, 5, 5, 35),
    "Sunglasses": (25, 25, 2, 3, 45),
    "Belts": (60, 30, 5, 0, 5),
}
_SEASON_WEIGHTS = {
    "Tshirts": (50, 5, 15, 30),
    "Shirts": (30, 10, 30, 30),
    "Tops": (55, 0, 15, 30),
    "Sweaters": (0, 60, 35, 5),
    "Trousers": (20, 25, 30, 25),
    "Jeans": (15, 30, 35, 20),
    "Shorts": (85, 0, 2, 13),
    "Skirts": (50, 5, 15, 30),
    "Dresses": (55, 5, 10, 30),
    "Jumpsuits": (60, 0, 10, 30),
    "Jackets": (2, 45, 40, 13),
    "Coats": (0, 70, 30, 0),
    "Sports Shoes": (30, 20, 25, 25),
    "Formal Shoes": (20, 30, 30, 20),
    "Casual Shoes": (35, 15, 20, 30),
    "Boots": (0, 60, 38, 2),
    "Sandals": (85, 0, 2, 13),
    "Flip Flops": (95, 0, 0, 5),
    "Heels": (35, 15, 20, 30),
    "Handbags": (30, 20, 25, 25),
    "Backpacks": (25, 25, 25, 25),
    "Wallets": (25, 25, 25, 25),
    "Watches": (25, 25, 25, 25),
    "Caps": (60, 5, 10, 25),
    "Hats": (50, 25, 10, 15),
    "Sunglasses": (75, 0, 5, 20),
    "Belts": (25, 25, 25, 25),
}
# Colour weights in COLOURS order; a few product types come in few colours.
_DEFAULT_COLOUR_WEIGHTS = (14, 10, 8, 9, 7, 5, 3, 8, 5, 5, 3, 3, 4, 3, 2, 2)
_COLOUR_OVERRIDES = {
    "Jeans": {"Blue": 10, "Navy Blue": 8, "Black": 4, "Grey": 2, "White": 1},
    "Formal Shoes": {"Black": 10, "Brown": 8, "Maroon": 2, "Navy Blue": 1},
    "Belts": {"Black": 10, "Brown": 10, "Beige": 2, "Maroon": 1},
    "Wallets": {"Black": 10, "Brown": 10, "Maroon": 2, "Navy Blue": 2},
    "Boots": {"Black": 8, "Brown": 8, "Beige": 4, "Olive": 2, "Grey": 1},
    "Coats": {"Black": 6, "Beige": 6, "Grey": 5, "Navy Blue": 4, "Brown": 4, "Maroon": 2, "Olive": 2},
}
# Probability of (Solid, Stripes, Checks, Dots) per level-1 category.
_PATTERN_WEIGHTS = {
    "Apparel": (55, 20, 15, 10),
    "Footwear": (90, 7, 0, 3),
    "Accessories": (80, 7, 10, 3),
}

# --- Titles -----------------------------------------------------------------

_BRANDS = (
    "Urbanloom", "Nordvik", "Kestrel & Co", "Mavello", "Zephyra", "Blue Harbor",
    "Trekline", "Luma", "Ostara", "Vantero", "Cobalt Lane", "Rivaz", "Hollis Street",
    "Aurelle", "Fennick", "Solstice", "Brackwood", "Mirelle", "Ironbay", "Peakform",
)
_PRODUCT_WORDS = {
    "Tshirts": ("T-Shirt", "Tee", "Tshirt", "T Shirt", "Crew Neck Tee", "Graphic Tee"),
    "Shirts": ("Shirt", "Button-Down Shirt", "Formal Shirt", "Casual Shirt", "Oxford Shirt"),
    "Tops": ("Top", "Tank Top", "Camisole", "Sleeveless Top", "Cami Top"),
    "Sweaters": ("Sweater", "Jumper", "Pullover", "Knit Sweater", "Cardigan"),
    "Trousers": ("Trousers", "Pants", "Chinos", "Formal Trousers", "Slacks"),
    "Jeans": ("Jeans", "Denim Jeans", "Skinny Jeans", "Denims", "Straight Jeans"),
    "Shorts": ("Shorts", "Bermuda Shorts", "Board Shorts", "Denim Shorts", "Short"),
    "Skirts": ("Skirt", "A-Line Skirt", "Pleated Skirt", "Mini Skirt", "Midi Skirt"),
    "Dresses": ("Dress", "Maxi Dress", "Sundress", "Midi Dress", "A-Line Dress"),
    "Jumpsuits": ("Jumpsuit", "Playsuit", "Romper", "Overall"),
    "Jackets": ("Jacket", "Bomber Jacket", "Zip Jacket", "Windcheater", "Denim Jacket"),
    "Coats": ("Coat", "Overcoat", "Trench Coat", "Long Coat", "Peacoat"),
    "Sports Shoes": ("Sports Shoes", "Running Shoes", "Trainers", "Sneakers", "Training Shoes"),
    "Formal Shoes": ("Formal Shoes", "Oxfords", "Derby Shoes", "Brogues", "Dress Shoes"),
    "Casual Shoes": ("Casual Shoes", "Loafers", "Slip-Ons", "Moccasins", "Boat Shoes"),
    "Boots": ("Boots", "Ankle Boots", "Chelsea Boots", "Combat Boots", "Hiking Boots"),
    "Sandals": ("Sandals", "Strappy Sandals", "Floaters", "Sports Sandals"),
    "Flip Flops": ("Flip Flops", "Flip-Flops", "Slippers", "Thongs", "Chappals"),
    "Heels": ("Heels", "Pumps", "Stilettos", "High Heels", "Court Shoes"),
    "Handbags": ("Handbag", "Tote Bag", "Shoulder Bag", "Satchel", "Purse"),
    "Backpacks": ("Backpack", "Rucksack", "Laptop Bag", "School Bag", "Daypack"),
    "Wallets": ("Wallet", "Billfold", "Card Holder", "Purse"),
    "Watches": ("Watch", "Analog Watch", "Wrist Watch", "Chronograph", "Timepiece"),
    "Caps": ("Cap", "Baseball Cap", "Snapback", "Trucker Cap"),
    "Hats": ("Hat", "Sun Hat", "Fedora", "Bucket Hat", "Panama Hat"),
    "Sunglasses": ("Sunglasses", "Shades", "Aviators", "Wayfarer Sunglasses", "Sunnies"),
    "Belts": ("Belt", "Leather Belt", "Casual Belt", "Formal Belt", "Reversible Belt"),
}
_GENDER_WORDS = {
    "Men": ("Men", "Men's", "Mens", "MEN"),
    "Women": ("Women", "Women's", "Womens", "Ladies"),
    "Boys": ("Boys", "Boy's", "Kids", "Boys'"),
    "Girls": ("Girls", "Girl's", "Kids", "Girls'"),
    "Unisex": ("Unisex", "Unisex Adult", ""),
}
_PATTERN_WORDS = {
    "Solid": ("", "", "Solid", "Plain"),
    "Stripes": ("Striped", "Stripe", "Pinstripe", "Striped"),
    "Checks": ("Checked", "Check", "Plaid", "Gingham"),
    "Dots": ("Polka Dot", "Dotted", "Printed", "Dot Print"),
}
_COLOUR_VARIANTS = {
    "Black": ("Jet Black",),
    "White": ("Off White",),
    "Navy Blue": ("Navy",),
    "Grey": ("Gray", "Charcoal"),
    "Beige": ("Cream", "Khaki"),
    "Maroon": ("Burgundy",),
    "Olive": ("Olive Green",),
}
_FILLERS = (
    "Casual", "Premium", "New", "Pack of 2", "Classic", "Trendy", "Festive",
    "Best Seller", "Limited Edition", "2024 Collection", "Combo", "Everyday",
)
_LEVEL1_FILLERS = {
    "Apparel": ("Cotton", "Slim Fit", "Regular Fit", "Relaxed Fit", "Stretch", "Linen Blend", "Pure Cotton"),
    "Footwear": ("Lace-Up", "Lightweight", "Cushioned", "Leather", "Non-Slip", "Memory Foam"),
    "Accessories": ("Leather", "Vegan Leather", "Travel", "Compact", "Gift Box", "Stainless"),
}
_SIZES = {
    "Apparel": ("S", "M", "L", "XL", "XXL", "Size 32", "Free Size"),
    "Footwear": ("UK 8", "Size 42", "EU 39", "US 9", "UK 6"),
    "Accessories": ("One Size", "Free Size", "Large"),
}
_TITLE_DRAWS = 32
_P_EMPTY_TITLE = 0.015
_P_NO_PRODUCT_WORD = 0.03
_P_TYPO = 0.05

# --- Silhouettes ------------------------------------------------------------
#
# A silhouette is a list of primitives in normalised [0, 1] coordinates (x to
# the right, y down). "Body" primitives build the item's mask (fill 255 adds,
# 0 cuts a hole); "detail" primitives paint a class into a second layer that
# recolours parts of the body (collars, soles, zips, lenses...). A primitive
# with a width is a polyline, otherwise a filled polygon.

_BODY, _SHADE, _METAL, _LIGHT, _DARK, _STITCH, _EDGE = range(7)
# Fixed RGB of the detail classes that do not depend on the item colour. The
# outline class _EDGE is added by the renderer, not by silhouettes.
_DETAIL_RGB = {_METAL: (192, 192, 198), _LIGHT: (240, 240, 234), _DARK: (38, 38, 42), _STITCH: (212, 158, 62)}


def _ellipse(cx, cy, rx, ry, t0=0.0, t1=2 * math.pi, n=28):
    t = np.linspace(t0, t1, n, endpoint=not math.isclose(t1 - t0, 2 * math.pi))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in t]


def _box(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _flip(points):
    return [(1.0 - x, y) for x, y in points]


def _sym(left_half):
    """A polygon symmetric about x = 0.5 from its left half, listed top to bottom."""
    return list(left_half) + _flip(left_half)[::-1]


def _add(points, width=None):
    return ("body", points, 255, width)


def _cut(points, width=None):
    return ("body", points, 0, width)


def _paint(points, cls, width=None):
    return ("detail", points, cls, width)


def _pair(primitive):
    """The primitive and its mirror image, for symmetric details."""
    layer, points, value, width = primitive
    return [primitive, (layer, _flip(points), value, width)]


def _dots(centres, r, cls):
    return [_paint(_ellipse(x, y, r, r, n=10), cls) for x, y in centres]


_SILHOUETTES = {
    "Tshirts": [
        _add(_sym([(0.5, 0.17), (0.42, 0.15), (0.37, 0.07), (0.18, 0.13), (0.02, 0.36), (0.13, 0.46),
                   (0.24, 0.36), (0.24, 0.96), (0.5, 0.96)])),
        _paint([(0.37, 0.07), (0.42, 0.15), (0.5, 0.17), (0.58, 0.15), (0.63, 0.07)], _SHADE, 0.035),
        *_pair(_paint([(0.03, 0.37), (0.13, 0.45)], _SHADE, 0.03)),
        _paint([(0.24, 0.92), (0.76, 0.92)], _SHADE, 0.015),
    ],
    "Shirts": [
        _add(_sym([(0.5, 0.13), (0.38, 0.05), (0.2, 0.1), (0.1, 0.28), (0.03, 0.87), (0.15, 0.89),
                   (0.22, 0.42), (0.22, 0.96), (0.5, 0.96)])),
        *_pair(_paint([(0.37, 0.04), (0.5, 0.15), (0.39, 0.22)], _SHADE)),
        _paint([(0.5, 0.15), (0.5, 0.96)], _SHADE, 0.02),
        *_dots([(0.5, y) for y in (0.3, 0.45, 0.6, 0.75, 0.9)], 0.02, _LIGHT),
        *_pair(_paint([(0.04, 0.79), (0.16, 0.81)], _SHADE, 0.05)),
        _paint([(0.3, 0.3), (0.41, 0.3), (0.41, 0.41), (0.3, 0.41), (0.3, 0.3)], _SHADE, 0.015),
    ],
    "Tops": [
        _add(_sym([(0.5, 0.25), (0.42, 0.2), (0.38, 0.02), (0.32, 0.02), (0.3, 0.26), (0.21, 0.38),
                   (0.19, 0.97), (0.5, 0.97)])),
        _paint([(0.38, 0.03), (0.42, 0.2), (0.5, 0.25), (0.58, 0.2), (0.62, 0.03)], _SHADE, 0.03),
        *_pair(_paint([(0.31, 0.05), (0.3, 0.26), (0.21, 0.38)], _SHADE, 0.03)),
    ],
    "Sweaters": [
        _add(_sym([(0.5, 0.13), (0.4, 0.1), (0.36, 0.05), (0.16, 0.11), (0.06, 0.3), (0.01, 0.92),
                   (0.16, 0.92), (0.2, 0.42), (0.2, 0.97), (0.5, 0.97)])),
        _paint([(0.35, 0.05), (0.41, 0.12), (0.5, 0.15), (0.59, 0.12), (0.65, 0.05)], _SHADE, 0.05),
        _paint(_box(0.2, 0.87, 0.8, 0.97), _SHADE),
        *[_paint([(x, 0.87), (x, 0.97)], _BODY, 0.012) for x in np.arange(0.24, 0.8, 0.045)],
        *_pair(_paint([(0.015, 0.84), (0.155, 0.84), (0.16, 0.92), (0.01, 0.92)], _SHADE)),
        *_pair(_paint([(0.05, 0.84), (0.05, 0.92)], _BODY, 0.012)),
        *_pair(_paint([(0.1, 0.84), (0.1, 0.92)], _BODY, 0.012)),
        _paint([(0.5, 0.25), (0.44, 0.4), (0.5, 0.55), (0.44, 0.7), (0.5, 0.85)], _SHADE, 0.025),
        _paint([(0.5, 0.25), (0.56, 0.4), (0.5, 0.55), (0.56, 0.7), (0.5, 0.85)], _SHADE, 0.025),
    ],
    "Trousers": [
        _add(_sym([(0.5, 0.03), (0.25, 0.03), (0.2, 0.97), (0.43, 0.97), (0.5, 0.3)])),
        _paint(_box(0.25, 0.03, 0.75, 0.09), _SHADE),
        _paint([(0.5, 0.09), (0.5, 0.24)], _SHADE, 0.015),
        *_pair(_paint([(0.33, 0.1), (0.31, 0.96)], _SHADE, 0.012)),
        *_pair(_paint([(0.27, 0.1), (0.33, 0.2)], _SHADE, 0.015)),
    ],
    "Jeans": [
        _add(_sym([(0.5, 0.02), (0.26, 0.02), (0.23, 0.5), (0.25, 0.98), (0.44, 0.98), (0.5, 0.34)])),
        _paint([(0.26, 0.08), (0.74, 0.08)], _STITCH, 0.012),
        *_pair(_paint([(0.26, 0.14), (0.31, 0.18), (0.38, 0.09)], _STITCH, 0.015)),
        *_pair(_paint([(0.47, 0.09), (0.47, 0.26), (0.5, 0.32)], _STITCH, 0.012)),
        *_pair(_paint([(0.245, 0.94), (0.44, 0.94)], _STITCH, 0.012)),
        *_pair(_paint([(0.27, 0.3), (0.255, 0.92)], _STITCH, 0.01)),
        *_dots([(0.5, 0.05), (0.27, 0.12), (0.73, 0.12)], 0.02, _METAL),
        *_pair(_paint(_box(0.33, 0.01, 0.35, 0.1), _SHADE)),
    ],
    "Shorts": [
        _add(_sym([(0.5, 0.08), (0.14, 0.08), (0.04, 0.9), (0.44, 0.92), (0.5, 0.52)])),
        _paint(_box(0.14, 0.08, 0.86, 0.2), _SHADE),
        *_pair(_paint([(0.47, 0.2), (0.44, 0.36)], _LIGHT, 0.02)),
        *_pair(_paint([(0.05, 0.84), (0.44, 0.86)], _SHADE, 0.015)),
        *_pair(_paint([(0.16, 0.24), (0.26, 0.36)], _SHADE, 0.015)),
    ],
    "Skirts": [
        _add(_sym([(0.5, 0.06), (0.31, 0.06), (0.07, 0.92), (0.3, 0.96), (0.5, 0.97)])),
        _paint(_box(0.31, 0.06, 0.69, 0.15), _SHADE),
        *_pair(_paint([(0.41, 0.15), (0.3, 0.95)], _SHADE, 0.012)),
        *_pair(_paint([(0.35, 0.15), (0.18, 0.93)], _SHADE, 0.012)),
        _paint([(0.5, 0.15), (0.5, 0.97)], _SHADE, 0.012),
    ],
    "Dresses": [
        _add(_sym([(0.5, 0.14), (0.43, 0.12), (0.38, 0.02), (0.33, 0.02), (0.3, 0.2), (0.35, 0.4),
                   (0.09, 0.97), (0.5, 0.99)])),
        _paint(_box(0.34, 0.38, 0.66, 0.44), _SHADE),
        _paint([(0.38, 0.03), (0.43, 0.12), (0.5, 0.14), (0.57, 0.12), (0.62, 0.03)], _SHADE, 0.025),
        *_pair(_paint([(0.4, 0.45), (0.28, 0.96)], _SHADE, 0.012)),
    ],
    "Jumpsuits": [
        _add(_sym([(0.5, 0.12), (0.43, 0.1), (0.39, 0.02), (0.32, 0.02), (0.29, 0.18), (0.31, 0.42),
                   (0.25, 0.98), (0.45, 0.98), (0.5, 0.58)])),
        _paint(_box(0.31, 0.4, 0.69, 0.46), _SHADE),
        *_dots([(0.5, y) for y in (0.18, 0.26, 0.34)], 0.018, _METAL),
        *_pair(_paint([(0.33, 0.5), (0.38, 0.6)], _SHADE, 0.015)),
        *_pair(_paint([(0.26, 0.94), (0.45, 0.94)], _SHADE, 0.015)),
    ],
    "Jackets": [
        _add(_sym([(0.5, 0.11), (0.38, 0.04), (0.17, 0.11), (0.06, 0.3), (0.01, 0.84), (0.15, 0.86),
                   (0.2, 0.45), (0.2, 0.86), (0.5, 0.86)])),
        _paint([(0.36, 0.05), (0.42, 0.12), (0.5, 0.14), (0.58, 0.12), (0.64, 0.05)], _SHADE, 0.06),
        _paint(_box(0.2, 0.8, 0.8, 0.86), _SHADE),
        *_pair(_paint([(0.01, 0.78), (0.15, 0.8), (0.15, 0.86), (0.01, 0.84)], _SHADE)),
        *_pair(_paint([(0.27, 0.55), (0.34, 0.7)], _SHADE, 0.025)),
        _paint([(0.5, 0.12), (0.5, 0.86)], _METAL, 0.025),
        _paint(_box(0.47, 0.17, 0.53, 0.27), _METAL),
    ],
    "Coats": [
        _add(_sym([(0.5, 0.22), (0.4, 0.03), (0.23, 0.06), (0.14, 0.22), (0.07, 0.72), (0.17, 0.74),
                   (0.24, 0.36), (0.19, 0.99), (0.5, 0.99)])),
        *_pair(_paint([(0.4, 0.03), (0.5, 0.32), (0.36, 0.26), (0.34, 0.08)], _SHADE)),
        _paint(_box(0.24, 0.5, 0.76, 0.55), _SHADE),
        _paint([(0.5, 0.32), (0.5, 0.99)], _SHADE, 0.012),
        *_dots([(x, y) for y in (0.4, 0.62, 0.74) for x in (0.43, 0.57)], 0.02, _DARK),
    ],
    "Sports Shoes": [
        _add([(0.02, 0.3), (0.14, 0.27), (0.28, 0.31), (0.36, 0.19), (0.44, 0.23), (0.62, 0.41),
              (0.8, 0.49), (0.92, 0.55), (0.98, 0.63), (0.99, 0.76), (0.97, 0.88), (0.03, 0.88), (0.01, 0.6)]),
        _paint([(0.01, 0.7), (0.99, 0.7), (0.97, 0.88), (0.03, 0.88)], _LIGHT),
        _paint([(0.02, 0.79), (0.98, 0.79)], _SHADE, 0.035),
        *[_paint([(0.4 + 0.24 * t, 0.26 + 0.18 * t), (0.46 + 0.24 * t, 0.3 + 0.18 * t)], _LIGHT, 0.025)
          for t in (0.1, 0.35, 0.6, 0.85)],
        _paint([(0.16, 0.62), (0.45, 0.55), (0.78, 0.6)], _LIGHT, 0.045),
        _paint([(0.02, 0.31), (0.14, 0.28), (0.28, 0.32)], _SHADE, 0.04),
    ],
    "Formal Shoes": [
        _add([(0.03, 0.42), (0.12, 0.36), (0.25, 0.38), (0.45, 0.5), (0.7, 0.57), (0.92, 0.63), (0.99, 0.71),
              (0.96, 0.77), (0.2, 0.77), (0.2, 0.86), (0.04, 0.86), (0.03, 0.6)]),
        _paint([(0.2, 0.775), (0.96, 0.775)], _DARK, 0.035),
        _paint(_box(0.04, 0.76, 0.2, 0.86), _DARK),
        _paint([(0.72, 0.58), (0.78, 0.75)], _SHADE, 0.02),
        *[_paint([(x, 0.46 + 0.3 * (x - 0.38)), (x + 0.05, 0.53 + 0.3 * (x - 0.38))], _SHADE, 0.02)
          for x in (0.38, 0.45, 0.52)],
    ],
    "Casual Shoes": [
        _add([(0.02, 0.5), (0.08, 0.43), (0.22, 0.47), (0.36, 0.5), (0.46, 0.45), (0.66, 0.47), (0.85, 0.54),
              (0.96, 0.62), (0.99, 0.72), (0.97, 0.8), (0.03, 0.8)]),
        _paint([(0.08, 0.445), (0.22, 0.485), (0.36, 0.515), (0.46, 0.465)], _DARK, 0.03),
        _paint(_box(0.02, 0.73, 0.99, 0.8), _STITCH),
        _paint([(0.48, 0.5), (0.66, 0.52), (0.84, 0.58), (0.93, 0.66)], _SHADE, 0.02),
        _paint([(0.44, 0.47), (0.5, 0.64)], _SHADE, 0.045),
    ],
    "Boots": [
        _add([(0.12, 0.02), (0.5, 0.02), (0.52, 0.52), (0.72, 0.6), (0.9, 0.66), (0.98, 0.78), (0.98, 0.89),
              (0.28, 0.89), (0.28, 0.98), (0.1, 0.98), (0.1, 0.6)]),
        _paint([(0.28, 0.9), (0.98, 0.9)], _DARK, 0.05),
        _paint(_box(0.1, 0.88, 0.28, 0.98), _DARK),
        _paint(_box(0.12, 0.02, 0.5, 0.09), _SHADE),
        *_dots([(0.47, y) for y in (0.16, 0.26, 0.36, 0.46)], 0.018, _METAL),
        _paint([(0.47, 0.16), (0.51, 0.21), (0.47, 0.26), (0.51, 0.31), (0.47, 0.36), (0.51, 0.41),
                (0.47, 0.46)], _SHADE, 0.015),
    ],
    "Sandals": [
        _add([(0.02, 0.76), (0.98, 0.76), (0.98, 0.86), (0.02, 0.89)]),
        _add(_ellipse(0.8, 0.78, 0.13, 0.2, math.pi, 2 * math.pi, n=12), 0.07),
        _add(_ellipse(0.52, 0.78, 0.13, 0.3, math.pi, 2 * math.pi, n=12), 0.07),
        _add([(0.08, 0.77), (0.12, 0.36), (0.24, 0.34), (0.36, 0.44)], 0.06),
        _paint([(0.02, 0.82), (0.98, 0.815)], _DARK, 0.06),
        _paint(_box(0.2, 0.31, 0.26, 0.39), _METAL),
    ],
    "Flip Flops": [
        _add(_ellipse(0.5, 0.29, 0.3, 0.27)),
        _add(_ellipse(0.5, 0.72, 0.23, 0.26)),
        _add([(0.2, 0.3), (0.8, 0.3), (0.73, 0.72), (0.27, 0.72)]),
        _paint([(0.25, 0.55), (0.5, 0.16), (0.75, 0.55)], _SHADE, 0.07),
        _paint(_ellipse(0.5, 0.16, 0.04, 0.04, n=10), _DARK),
    ],
    "Heels": [
        _add([(0.04, 0.06), (0.14, 0.05), (0.3, 0.3), (0.55, 0.58), (0.72, 0.62), (0.99, 0.8), (0.95, 0.87),
              (0.7, 0.85), (0.45, 0.68), (0.26, 0.46), (0.2, 0.99), (0.14, 0.99), (0.13, 0.46), (0.03, 0.42)]),
        _paint([(0.95, 0.86), (0.7, 0.845), (0.45, 0.675), (0.26, 0.455)], _DARK, 0.025),
        _paint(_box(0.13, 0.95, 0.2, 0.99), _DARK),
        _paint([(0.04, 0.07), (0.14, 0.06), (0.3, 0.31), (0.55, 0.59), (0.72, 0.63)], _SHADE, 0.02),
    ],
    "Handbags": [
        _add(_ellipse(0.5, 0.38, 0.27, 0.31)),
        _cut(_ellipse(0.5, 0.4, 0.2, 0.25)),
        _add([(0.15, 0.38), (0.85, 0.38), (0.96, 0.96), (0.04, 0.96)]),
        _paint([(0.15, 0.38), (0.85, 0.38), (0.8, 0.6), (0.5, 0.67), (0.2, 0.6)], _SHADE),
        _paint(_box(0.46, 0.6, 0.54, 0.7), _METAL),
        *_dots([(0.27, 0.4), (0.73, 0.4)], 0.03, _METAL),
    ],
    "Backpacks": [
        _add(_ellipse(0.5, 0.09, 0.11, 0.08)),
        _cut(_ellipse(0.5, 0.1, 0.07, 0.05)),
        *_pair(_add([(0.22, 0.22), (0.09, 0.5), (0.15, 0.93)], 0.06)),
        _add(_ellipse(0.5, 0.32, 0.3, 0.2, math.pi, 2 * math.pi)),
        _add([(0.2, 0.32), (0.8, 0.32), (0.8, 0.9), (0.74, 0.97), (0.26, 0.97), (0.2, 0.9)]),
        _paint([(0.28, 0.58), (0.72, 0.58), (0.72, 0.88), (0.66, 0.92), (0.34, 0.92), (0.28, 0.88)], _SHADE),
        _paint([(0.31, 0.64), (0.69, 0.64)], _METAL, 0.02),
        _paint(_ellipse(0.5, 0.34, 0.25, 0.16, math.pi, 2 * math.pi, n=14), _METAL, 0.02),
        *_dots([(0.66, 0.67), (0.27, 0.37)], 0.022, _METAL),
    ],
    "Wallets": [
        _add([(0.08, 0.2), (0.92, 0.2), (0.95, 0.23), (0.95, 0.77), (0.92, 0.8), (0.08, 0.8), (0.05, 0.77),
              (0.05, 0.23)]),
        _paint([(0.05, 0.22), (0.95, 0.22), (0.95, 0.44), (0.56, 0.56), (0.44, 0.56), (0.05, 0.44)], _SHADE),
        _paint([(0.09, 0.5), (0.09, 0.75), (0.91, 0.75), (0.91, 0.5)], _SHADE, 0.012),
        _paint(_ellipse(0.5, 0.52, 0.045, 0.045, n=12), _METAL),
    ],
    "Watches": [
        _add(_box(0.38, 0.0, 0.62, 1.0)),
        _add(_ellipse(0.5, 0.5, 0.3, 0.3)),
        _add(_box(0.78, 0.46, 0.85, 0.54)),
        _paint(_ellipse(0.5, 0.5, 0.3, 0.3), _METAL),
        _paint(_box(0.78, 0.46, 0.85, 0.54), _METAL),
        _paint(_ellipse(0.5, 0.5, 0.24, 0.24), _LIGHT),
        *[_paint([(0.5 + 0.2 * math.cos(a), 0.5 + 0.2 * math.sin(a)), (0.5 + 0.23 * math.cos(a),
                  0.5 + 0.23 * math.sin(a))], _DARK, 0.02) for a in np.arange(0, 2 * math.pi, math.pi / 2)],
        _paint([(0.5, 0.5), (0.5, 0.33)], _DARK, 0.03),
        _paint([(0.5, 0.5), (0.63, 0.57)], _DARK, 0.025),
        *_dots([(0.5, 0.86), (0.5, 0.93)], 0.022, _DARK),
    ],
    "Caps": [
        _add(_ellipse(0.42, 0.72, 0.38, 0.56, math.pi, 2 * math.pi)),
        _add([(0.7, 0.6), (0.88, 0.62), (0.99, 0.69), (0.96, 0.75), (0.74, 0.73)]),
        _paint(_box(0.04, 0.66, 0.8, 0.72), _SHADE),
        _paint([(0.74, 0.7), (0.96, 0.72)], _SHADE, 0.02),
        _paint(_ellipse(0.42, 0.17, 0.05, 0.03, n=10), _SHADE),
        _paint([(0.42, 0.18), (0.56, 0.4), (0.62, 0.66)], _SHADE, 0.012),
        _paint([(0.42, 0.18), (0.3, 0.4), (0.24, 0.66)], _SHADE, 0.012),
    ],
    "Hats": [
        _add(_ellipse(0.5, 0.72, 0.49, 0.14)),
        _add([(0.25, 0.74), (0.27, 0.32), (0.36, 0.22), (0.5, 0.29), (0.64, 0.22), (0.73, 0.32), (0.75, 0.74)]),
        _paint(_box(0.26, 0.56, 0.74, 0.67), _DARK),
        _paint(_ellipse(0.5, 0.76, 0.44, 0.08, 0.0, math.pi, n=14), _SHADE, 0.015),
    ],
    "Sunglasses": [
        *_pair(_add(_ellipse(0.27, 0.52, 0.22, 0.17))),
        _add([(0.44, 0.45), (0.5, 0.41), (0.56, 0.45)], 0.05),
        _add([(0.05, 0.39), (0.95, 0.39)], 0.05),
        *_pair(_add([(0.05, 0.42), (0.01, 0.44)], 0.04)),
        *_pair(_paint(_ellipse(0.27, 0.53, 0.18, 0.13), _DARK)),
        *_pair(_paint([(0.17, 0.5), (0.22, 0.45)], _LIGHT, 0.02)),
    ],
    "Belts": [
        _add(_box(0.1, 0.32, 0.3, 0.68)),
        _cut(_box(0.14, 0.37, 0.26, 0.63)),
        _add([(0.02, 0.42), (0.92, 0.42), (0.99, 0.5), (0.92, 0.58), (0.02, 0.58)]),
        _paint(_box(0.1, 0.32, 0.3, 0.68), _METAL),
        _paint(_box(0.14, 0.37, 0.26, 0.63), _BODY),
        _paint([(0.14, 0.5), (0.29, 0.5)], _METAL, 0.025),
        *_dots([(x, 0.5) for x in (0.55, 0.62, 0.69, 0.76)], 0.018, _DARK),
        _paint([(0.31, 0.445), (0.92, 0.445), (0.965, 0.5), (0.92, 0.555), (0.31, 0.555)], _SHADE, 0.01),
    ],
}


def _compile(primitives):
    """Stack a silhouette's points into one array, so one matrix product places them all."""
    points, ops, start = [], [], 0
    for layer, pts, value, width in primitives:
        points.extend(pts)
        ops.append((layer == "body", start, start + len(pts), value, width))
        start += len(pts)
    is_body = np.zeros(start, dtype=bool)
    for body, lo, hi, _, _ in ops:
        is_body[lo:hi] |= body
    return np.asarray(points, dtype=np.float64) - 0.5, is_body, ops


def _leaves():
    """(path, level1, leaf, weight) for every leaf, in tree order."""
    return [
        (CATEGORY_SEP.join((l1, l2, leaf)), l1, leaf, weight)
        for l1, level2 in CATEGORY_TREE.items()
        for l2, leaves in level2.items()
        for leaf, weight in leaves.items()
    ]


_LEAVES = _leaves()
_SHAPES = [_compile(_SILHOUETTES[leaf]) for _, _, leaf, _ in _LEAVES]
_COLOUR_NAMES = tuple(COLOURS)
_COLOUR_RGB = np.array([COLOURS[c] for c in _COLOUR_NAMES], dtype=np.float64)
_LEAF_INDEX = {leaf: k for k, (_, _, leaf, _) in enumerate(_LEAVES)}
_COLOUR_INDEX = {name: k for k, name in enumerate(_COLOUR_NAMES)}


def leaf_probabilities():
    """Probability of each leaf category in a generated catalog.

    Returns
    -------
    dict
        ``"Level1 > Level2 > Leaf"`` -> probability, in tree order, summing to one.
        Fixed by ``CATEGORY_TREE``; the seed does not change it.
    """
    total = sum(w for _, _, _, w in _LEAVES)
    return {path: w / total for path, _, _, w in _LEAVES}


# --- Rendering ----------------------------------------------------------------


def _shade(rgb, amount):
    """A darker version of a light colour, or a lighter version of a dark one, so it always shows."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb @ (0.299, 0.587, 0.114) > 100:
        return rgb * (1 - amount)
    return rgb + (255 - rgb) * amount


@functools.lru_cache(maxsize=4)
def _pattern_tiles(size):
    """Boolean pattern masks twice the image size, per pattern.

    Computed once per image size; an image then crops one at a random offset,
    which is far cheaper than evaluating the pattern for every image.
    """
    yy, xx = np.mgrid[0:2 * size, 0:2 * size].astype(np.float64)
    tiles = {"Stripes": [], "Checks": [], "Dots": []}
    for period in size * np.array([0.05, 0.07, 0.1]):
        for angle in (0.0, 0.5 * math.pi, 0.25 * math.pi, 0.75 * math.pi):
            tiles["Stripes"].append(((xx * math.cos(angle) + yy * math.sin(angle)) / period) % 1.0 < 0.4)
        tiles["Checks"].append((np.floor(xx / period) + np.floor(yy / period)) % 2 == 1)
        dx, dy = (xx / period) % 1.0 - 0.5, (yy / period) % 1.0 - 0.5
        tiles["Dots"].append(dx * dx + dy * dy < 0.22**2)
    return tiles


def render_item(leaf, colour, pattern, size, rng):
    """Draw one product photo.

    Parameters
    ----------
    leaf : str
        Leaf category name (``"Tshirts"``), which picks the silhouette.
    colour : str
        A key of ``COLOURS``.
    pattern : str
        One of ``PATTERNS``.
    size : int
        Width and height in pixels.
    rng : numpy.random.Generator
        Source of the pose, pattern phase, background and noise.

    Returns
    -------
    image : numpy.ndarray
        ``(size, size, 3)`` uint8 RGB image.
    body : numpy.ndarray
        ``(size, size)`` uint8, 1 where the product is (its shadow not included).
    """
    points, is_body, ops = _SHAPES[_LEAF_INDEX[leaf]]
    u = rng.random(13)

    # A random pose (scale, slight anisotropy, mirror, small rotation, position)
    # so that only the shape tells the product type; the silhouette is shrunk
    # if needed so that it always stays inside the canvas.
    scale = size * (0.55 + 0.4 * u[0])
    sx = scale * (0.94 + 0.12 * u[1]) * (-1.0 if u[2] < 0.3 else 1.0)
    sy = scale * (0.94 + 0.12 * u[3])
    angle = math.radians(16.0 * (u[4] - 0.5))
    c, s = math.cos(angle), math.sin(angle)
    xy = points @ np.array([[sx * c, sx * s], [-sy * s, sy * c]])
    lo, hi = xy[is_body].min(axis=0), xy[is_body].max(axis=0)
    margin = 2 + 0.03 * scale
    fit = min(1.0, (size - 2 * margin) / float((hi - lo).max()))
    xy, lo, hi = xy * fit, lo * fit, hi * fit
    xy += (margin - lo) + u[5:7] * np.maximum(size - 2 * margin - (hi - lo), 0.0)
    stroke = abs(sx) * fit

    mask = Image.new("L", (size, size), 0)
    detail = Image.new("L", (size, size), 0)
    draws = {True: ImageDraw.Draw(mask), False: ImageDraw.Draw(detail)}
    for body, start, stop, value, width in ops:
        flat = xy[start:stop].ravel().tolist()
        if width is None:
            draws[body].polygon(flat, fill=value)
        else:
            draws[body].line(flat, fill=value, width=max(1, round(width * stroke)), joint="curve")

    # Every pixel gets a key from its layers (detail class, pattern, body,
    # shadow) and one table lookup colours it: far cheaper than masking arrays.
    pattern_bit = 0
    if pattern != "Solid":
        tiles = _pattern_tiles(size)[pattern]
        oy, ox = (u[9:11] * size).astype(int)
        pattern_bit = tiles[int(u[8] * len(tiles))][oy:oy + size, ox:ox + size].view(np.uint8)
    body = np.asarray(mask) // 255
    shadow = np.zeros_like(body)
    shift = max(1, round(size * (0.01 + 0.02 * u[7])))
    shadow[shift:, shift:] = body[:-shift, :-shift]
    # A darker one-pixel outline keeps white items visible on the light background.
    inner = body.copy()
    inner[1:] &= body[:-1]
    inner[:-1] &= body[1:]
    inner[:, 1:] &= body[:, :-1]
    inner[:, :-1] &= body[:, 1:]
    detail = np.maximum(np.asarray(detail), (body - inner) * _EDGE)
    key = ((detail * 2 + pattern_bit) * 2 + body) * 2 + shadow

    # Light, slightly tinted studio background; noise over everything like a
    # cheap camera sensor. The palette is kept within [8, 240] so that adding
    # noise in [0, 15] and subtracting 8 cannot wrap around in uint8.
    rgb = _COLOUR_RGB[_COLOUR_INDEX[colour]]
    background = np.minimum(226 + 20 * u[11] + rng.integers(-7, 8, size=3), 252)
    palette = np.array(
        [background, background - 22 - 18 * u[12], rgb, _shade(rgb, 0.35), _shade(rgb, 0.45)]
        + [_DETAIL_RGB[k] for k in sorted(_DETAIL_RGB)]
        + [rgb * 0.7]
    )
    palette = np.clip(palette, 8, 240).astype(np.uint8)[_KEY_TO_PALETTE]
    image = np.take(palette, key, axis=0)
    image += rng.integers(0, 256, size=image.shape, dtype=np.uint8) & 15
    image -= 8
    return image, body


def _key_to_palette():
    """Palette row of each layer key ``((detail * 2 + pattern) * 2 + body) * 2 + shadow``.

    Palette rows: 0 background, 1 shadow, 2 item colour, 3 pattern shade,
    4 detail shade, then the fixed detail colours in class order, then the
    outline: detail class ``k`` is row ``3 + k``.
    """
    table = []
    for key in range(2 * 2 * 2 * (_EDGE + 1)):
        shadow, body, pattern, detail = key & 1, (key >> 1) & 1, (key >> 2) & 1, key >> 3
        if not body:
            table.append(shadow)
        elif detail:
            table.append(3 + detail)
        else:
            table.append(2 + pattern)
    return np.array(table)


_KEY_TO_PALETTE = _key_to_palette()


def render_cluttered(leaf, colour, pattern, size, rng):
    """Draw one product photo as a shop's lifestyle shot: the product small (45 to 75 % of the side), anywhere
    on a busy background of stripes or checks, shapes and a distractor as large as a product.

    Parameters are those of :func:`render_item`.

    Returns
    -------
    image : numpy.ndarray
        ``(size, size, 3)`` uint8 RGB image.
    body : numpy.ndarray
        ``(size, size)`` uint8, 1 where the product is.
    """
    side = round(size * (0.45 + 0.3 * rng.random()))
    item, item_body = render_item(leaf, colour, pattern, side, rng)
    x0, y0 = rng.integers(0, size - side + 1, size=2)
    image = _busy_background(size, rng)
    # Only the product is pasted: a photo taken in a room shows no studio backdrop.
    pasted = item_body == 1
    image[y0:y0 + side, x0:x0 + side][pasted] = item[pasted]
    body = np.zeros((size, size), dtype=np.uint8)
    body[y0:y0 + side, x0:x0 + side] = item_body
    return image, body


def _busy_background(size, rng):
    """A room-like clutter: a textile texture (stripes or checks), random shapes and one larger outlined
    distractor, in colours around one random tone, and the sensor noise of :func:`render_item`."""
    # Around one tone, as a room out of focus behind a product is: clutter in colours of any contrast would
    # hide the product from the eye, too.
    tone = rng.integers(70, 186, size=3)
    colours = np.clip(tone + rng.integers(-45, 46, size=(14, 3)), 8, 240)
    colours[:2] = np.clip(tone + rng.integers(-20, 21, size=(2, 3)), 8, 240)
    tiles = _pattern_tiles(size)[("Stripes", "Checks")[int(rng.integers(2))]]
    oy, ox = rng.integers(0, size, size=2)
    texture = tiles[int(rng.integers(len(tiles)))][oy:oy + size, ox:ox + size]
    canvas = Image.fromarray(np.where(texture[..., None], colours[0], colours[1]).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for colour in colours[2:12]:
        cx, cy, rx, ry = rng.random(4) * (size, size, 0.15 * size, 0.15 * size) + (0, 0, 2, 2)
        shape = (cx - rx, cy - ry, cx + rx, cy + ry)
        getattr(draw, ("rectangle", "ellipse")[int(rng.integers(2))])(shape, fill=tuple(colour.tolist()))
    # The distractor: a solid blob as large as a product, with the dark outline products have.
    cx, cy = rng.random(2) * size
    angles = np.sort(rng.random(7)) * 2 * math.pi
    radii = size * (0.12 + 0.12 * rng.random(7))
    blob = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).ravel().tolist()
    draw.polygon(blob, fill=tuple(colours[12].tolist()), outline=tuple((colours[13] // 3).tolist()), width=2)
    image = np.asarray(canvas).copy()
    image += rng.integers(0, 256, size=image.shape, dtype=np.uint8) & 15
    return image


def box_of(mask):
    """``(x0, y0, x1, y1)``, the box of a mask's nonzero pixels (``x1`` and ``y1`` one past the last, as PIL
    crops), or ``None`` for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _render_chunk(task):
    """Render and save one chunk of images; runs in a worker process. Returns each product's box."""
    images_dir, seed, size, start, ids, leaves, colours, patterns, cluttered = task
    boxes = []
    for k, (item_id, leaf, colour, pattern, busy) in enumerate(
            zip(ids, leaves, colours, patterns, cluttered, strict=True)):
        rng = np.random.default_rng([seed, start + k])
        render = render_cluttered if busy else render_item
        image, body = render(_LEAVES[leaf][2], _COLOUR_NAMES[colour], PATTERNS[pattern], size, rng)
        Image.fromarray(image).save(os.path.join(images_dir, f"{item_id}.jpg"), quality=90)
        boxes.append(box_of(body))
    return start, boxes


# --- Catalog rows -------------------------------------------------------------


def _draw_categorical(rng, weights, rows):
    """One draw per row from that row's categorical distribution, vectorised."""
    p = np.asarray(weights, dtype=np.float64)
    cumulative = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)[rows]
    cumulative[:, -1] = 1.0
    return (rng.random(len(rows))[:, None] > cumulative).sum(axis=1)


def _draw_rows(n, seed):
    """Leaf, gender, season, colour and pattern indices of every item, plus title dice."""
    rng = np.random.default_rng(seed)
    probs = np.array(list(leaf_probabilities().values()))
    n_leaves = len(probs)
    # Every leaf appears at least once when there is room, so that small demo
    # catalogs still cover the whole tree and stratified splits are possible.
    guaranteed = np.arange(n_leaves) if n >= n_leaves else np.empty(0, dtype=np.int64)
    leaf = rng.permutation(np.concatenate([guaranteed, rng.choice(n_leaves, size=n - len(guaranteed), p=probs)]))
    names = [name for _, _, name, _ in _LEAVES]
    gender = _draw_categorical(rng, [_GENDER_WEIGHTS[x] for x in names], leaf)
    season = _draw_categorical(rng, [_SEASON_WEIGHTS[x] for x in names], leaf)
    colour_weights = []
    for name in names:
        override = _COLOUR_OVERRIDES.get(name)
        colour_weights.append([override.get(c, 0) for c in _COLOUR_NAMES] if override else _DEFAULT_COLOUR_WEIGHTS)
    colour = _draw_categorical(rng, colour_weights, leaf)
    pattern = _draw_categorical(rng, [_PATTERN_WEIGHTS[l1] for _, l1, _, _ in _LEAVES], leaf)
    dice = rng.random((n, _TITLE_DRAWS))
    return leaf, gender, season, colour, pattern, dice


class _Dice:
    """Hands out a fixed row of uniforms, so a title needs no generator of its own."""

    def __init__(self, row):
        self._row = row
        self._next = 0

    def roll(self):
        value = self._row[self._next]
        self._next += 1
        return value

    def chance(self, p):
        return self.roll() < p

    def pick(self, options):
        return options[int(self.roll() * len(options))]


def _typo(text, dice):
    """Swap, drop or double one letter of a word, like a hurried seller."""
    words = text.split(" ")
    long_words = [k for k, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long_words:
        return text
    k = dice.pick(long_words)
    word = words[k]
    i = 1 + int(dice.roll() * (len(word) - 2))
    kind = dice.pick(("swap", "drop", "double"))
    if kind == "swap":
        word = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    elif kind == "drop":
        word = word[:i] + word[i + 1:]
    else:
        word = word[:i] + word[i] + word[i:]
    words[k] = word
    return " ".join(words)


def _title(row, level1, leaf, gender, season, colour, pattern):
    """A web-shop style product title for one item."""
    dice = _Dice(row)
    if dice.chance(_P_EMPTY_TITLE):
        return ""
    product = "" if dice.chance(_P_NO_PRODUCT_WORD) else dice.pick(_PRODUCT_WORDS[leaf])
    brand = dice.pick(_BRANDS)
    gender_word = dice.pick(_GENDER_WORDS[gender])
    if dice.chance(0.1):
        colour_word = ""
    elif colour in _COLOUR_VARIANTS and dice.chance(0.25):
        colour_word = dice.pick(_COLOUR_VARIANTS[colour])
    else:
        colour_word = colour
    pattern_word = dice.pick(_PATTERN_WORDS[pattern])
    fillers = []
    if dice.chance(0.45):
        fillers.append(dice.pick(_LEVEL1_FILLERS[level1]))
    if dice.chance(0.3):
        fillers.append(dice.pick(_FILLERS))
    if dice.chance(0.12):
        fillers.append(season)
    tail = []
    if dice.chance(0.15):
        tail.append(dice.pick(_SIZES[level1]))
    if dice.chance(0.15):
        tail.append(f"{dice.pick('ABCDEFGHKLMNPRSTVXZ')}-{1000 + int(dice.roll() * 9000)}")
    extra = " ".join(fillers)
    sep = dice.pick((" - ", " | ", ", ", " "))

    template = int(dice.roll() * 5)
    if template == 0:
        parts = [brand, gender_word, colour_word, pattern_word, extra, product, sep, *tail]
    elif template == 1:
        parts = [brand, pattern_word, colour_word, product, f"for {gender_word}" if gender_word else "", sep, extra,
                 *tail]
    elif template == 2:
        parts = [extra, colour_word, pattern_word, product, "by", brand, f"({gender_word})", *tail]
    elif template == 3:
        parts = [product, sep, brand, colour_word, extra, gender_word, *tail]
    else:
        parts = [brand, *tail, gender_word, extra, product, sep, colour_word, pattern_word]
    text = " ".join(p.strip() for p in parts if p and p.strip() not in ("", "()"))
    # Separators and brackets left dangling by empty parts read as noise, not signal.
    text = text.replace("()", "").replace(" ,", ",").replace("  ", " ").strip(" -|,")

    casing = dice.roll()
    if casing < 0.07:
        text = text.upper()
    elif casing < 0.14:
        text = text.lower()
    elif casing < 0.2:
        text = text.title()
    if dice.chance(_P_TYPO):
        text = _typo(text, dice)
    if dice.chance(0.05):
        text += dice.pick((" !!", "...", " *", " #"))
    return text


# --- Public entry point ---------------------------------------------------------


def _write_csv_atomically(path, header, rows):
    """Write a CSV via a temporary file in the same folder, so readers never see half a catalog."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def generate_demo_catalog(out_dir, n=2000, seed=42, image_size=128, workers=None, progress=True, planted=0.0,
                          clutter=0.0):
    """Write a synthetic fashion catalog: ``out_dir/catalog.csv`` and ``out_dir/images/<id>.jpg``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder to write into; created if missing. Existing files of the same
        names are overwritten, other files are left alone.
    n : int
        Number of items, at least 1. With ``n`` >= 27 every leaf category occurs.
    seed : int
        Non-negative seed. The same ``(n, seed, image_size)`` gives byte-identical
        files; ``catalog.csv`` does not depend on ``image_size`` at all.
    image_size : int
        Width and height of the square RGB JPEG images, at least 32.
    workers : int, optional
        Worker processes rendering images; defaults to ``os.cpu_count()``. The
        output does not depend on it.
    progress : bool
        Show a progress bar (only on a terminal).
    planted : float
        Share of the items filed under another leaf category than their title and
        photo show, and as many again added as duplicates of other items (their photo
        re-encoded, resized or mirrored): known errors for the audit to find, listed
        in ``out_dir/planted.json``. 0 plants none.
    clutter : float
        Share of the photos taken as lifestyle shots (:func:`render_cluttered`): the
        product small and off-centre on a busy background. With any, every product's
        true box is listed in ``out_dir/boxes.csv`` (``id``, ``box`` as
        ``x0,y0,x1,y1`` in pixels of its image, ``x1`` and ``y1`` one past the last,
        and ``cluttered``, 1 or 0):
        a file of its own, as a column of the catalog would be read as an attribute.
        The other photos are those of a catalog without clutter.

    Returns
    -------
    dict
        ``n`` (items written), ``planted``, ``cluttered``, ``seed``, ``image_size``, ``csv_path``, ``level1_counts``
        (level-1 category -> items), ``largest_leaf`` and ``smallest_leaf``
        (``(path, items)`` among leaves that occur) and ``seconds`` taken.

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    if not 0 <= planted <= 0.5:
        raise ValueError(f"planted must be from 0 to 0.5, got {planted}")
    if not 0 <= clutter <= 1:
        raise ValueError(f"clutter must be from 0 to 1, got {clutter}")
    image_size = _check_int("image_size", image_size, 32)
    workers = (os.cpu_count() or 1) if workers is None else _check_int("workers", workers, 1)
    started = time.perf_counter()

    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    ids = [str(100001 + i) for i in range(n)]
    leaf, gender, season, colour, pattern, dice = _draw_rows(n, seed)
    # A generator of its own: the rows, and the photos left plain, are those of the same seed without clutter.
    cluttered = np.random.default_rng([seed, 2]).random(n) < clutter

    chunk = max(16, min(500, math.ceil(n / (8 * workers))))
    tasks = [
        (str(images_dir), seed, image_size, lo, ids[lo:lo + chunk], leaf[lo:lo + chunk].tolist(),
         colour[lo:lo + chunk].tolist(), pattern[lo:lo + chunk].tolist(), cluttered[lo:lo + chunk].tolist())
        for lo in range(0, n, chunk)
    ]
    workers = min(workers, len(tasks))
    bar = progress_bar(total=n, desc="demo images", unit="image", progress=progress)
    # Spawned, not forked, workers: a parent that has started threads cannot deadlock them.
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        done = pool.imap_unordered(_render_chunk, tasks) if pool else map(_render_chunk, tasks)
        # Titles are built while the pool renders the first chunks.
        rows, boxes = [], {}
        for i in range(n):
            path, level1, leaf_name, _ = _LEAVES[leaf[i]]
            g, s, c, p = GENDERS[gender[i]], SEASONS[season[i]], _COLOUR_NAMES[colour[i]], PATTERNS[pattern[i]]
            title = _title(dice[i].tolist(), level1, leaf_name, g, s, c, p)
            rows.append((ids[i], f"{ids[i]}.jpg", title, path, g, s, c))
        for start, chunk_boxes in done:
            boxes.update({ids[start + k]: box for k, box in enumerate(chunk_boxes)})
            bar.update(len(chunk_boxes))
    finally:
        bar.close()
        if pool:
            pool.terminate()
            pool.join()

    if planted:
        _plant_errors(rows, leaf, images_dir, round(planted * n), seed, out_dir / "planted.json", boxes, image_size)
    csv_path = out_dir / "catalog.csv"
    _write_csv_atomically(csv_path, ("id", "image", "title", "category", "gender", "season", "colour"), rows)
    if clutter:
        busy = {ids[i] for i in np.flatnonzero(cluttered)}
        busy |= {copy for copy, source in _planted_copies(out_dir).items() if source in busy}
        _write_csv_atomically(out_dir / "boxes.csv", ("id", "box", "cluttered"),
                              [(item, ",".join(map(str, boxes[item])), int(item in busy)) for item, *_ in rows])

    leaf_counts = np.bincount(leaf, minlength=len(_LEAVES))
    present = np.flatnonzero(leaf_counts)
    largest, smallest = present[leaf_counts[present].argmax()], present[leaf_counts[present].argmin()]
    level1_counts = {l1: 0 for l1 in CATEGORY_TREE}
    for (_, l1, _, _), count in zip(_LEAVES, leaf_counts, strict=True):
        level1_counts[l1] += int(count)
    return {
        "n": len(rows),
        "planted": round(planted * n),
        "cluttered": int(cluttered.sum()),
        "seed": seed,
        "image_size": image_size,
        "csv_path": str(csv_path),
        "level1_counts": level1_counts,
        "largest_leaf": (_LEAVES[largest][0], int(leaf_counts[largest])),
        "smallest_leaf": (_LEAVES[smallest][0], int(leaf_counts[smallest])),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _plant_errors(rows, leaf, images_dir, count, seed, record, boxes, size):
    """File ``count`` rows under another leaf, and add ``count`` duplicates of others; list both in ``record``,
    and the duplicates' boxes in ``boxes``."""
    rng = np.random.default_rng([seed, 1])
    n = len(rows)
    chosen = rng.choice(n, size=min(2 * count, n), replace=False)
    wrong, copied = chosen[:count], chosen[count:]
    planted = {"wrong_category": {}, "duplicates": {}}
    for i in wrong:
        other = (leaf[i] + rng.integers(1, len(_LEAVES))) % len(_LEAVES)
        item, image, title, path, *rest = rows[i]
        rows[i] = (item, image, title, _LEAVES[other][0], *rest)
        planted["wrong_category"][item] = {"given": _LEAVES[other][0], "shown": path}
    for j, i in enumerate(copied):
        item = str(100001 + n + j)
        save_duplicate(images_dir / rows[i][1], images_dir / f"{item}.jpg", j % 3)
        rows.append((item, f"{item}.jpg", *rows[i][2:]))
        x0, y0, x1, y1 = boxes[rows[i][0]]
        boxes[item] = ((x0, y0, x1, y1), tuple(v * (size * 9 // 10) // size for v in (x0, y0, x1, y1)),
                       (size - x1, y0, size - x0, y1))[j % 3]
        planted["duplicates"][item] = rows[i][0]
    record.write_text(json.dumps(planted, indent=2) + "\n")


def _planted_copies(folder):
    """Planted duplicate -> the product it copies, from ``planted.json`` if there is one."""
    record = Path(folder) / "planted.json"
    return json.loads(record.read_text())["duplicates"] if record.is_file() else {}


def read_boxes(folder):
    """The true boxes of a demo catalog made with clutter: ``{id: (x0, y0, x1, y1)}`` from ``folder/boxes.csv``."""
    with open(Path(folder) / "boxes.csv", newline="", encoding="utf-8") as file:
        return {row["id"]: tuple(int(v) for v in row["box"].split(",")) for row in csv.DictReader(file)}


def save_duplicate(source, target, way):
    """Save a copy of the photo ``source`` as a shop files one twice: ``way`` 0 saved again at JPEG quality 60,
    1 resized to 90 %, 2 mirrored."""
    with Image.open(source) as photo:
        photo = photo.convert("RGB")
        if way == 0:
            photo.save(target, quality=60)
        elif way == 1:
            photo.resize((photo.width * 9 // 10, photo.height * 9 // 10)).save(target, quality=90)
        else:
            ImageOps.mirror(photo).save(target, quality=90)


def make_demo_catalog(directory=DEMO_CATALOG_DIR, n=2000, seed=42, image_size=128, workers=None, progress=True,
                      planted=0.0, clutter=0.0):
    """Generate the demo catalog and publish it as ``directory`` in one step; return the generator's summary."""
    key = demo_catalog_key(n, seed, image_size, planted, clutter)
    with publish(directory, "demo catalog", key, version_of(key)) as staging:
        summary = generate_demo_catalog(staging, n, seed, image_size, workers, progress, planted, clutter)
        summary["csv_path"] = str(Path(directory) / "catalog.csv")
    return summary
