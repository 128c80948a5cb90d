"""Text search and filters on a tiny catalog: attribute words, BM25 over titles, bounded scores, no padding."""
import numpy as np
import pytest

from shoplens import ShoplensError, config
from shoplens.data.clean_titles import TitleCleaner
from shoplens.search.filters import Fields
from shoplens.search.text_search import TextSearch, describe_reading

# title, category, gender, colour, season
PRODUCTS = [
    ("Nike Men Blue Running Shoes", "Footwear > Shoes > Sports Shoes", "Men", "Blue", "Summer"),
    ("Nike Men White Running Shoes", "Footwear > Shoes > Sports Shoes", "Men", "White", "Summer"),
    ("Puma Women Blue Running Shoe", "Footwear > Shoes > Sports Shoes", "Women", "Blue", "Fall"),
    ("Adidas Men Blue Trainers", "Footwear > Shoes > Sports Shoes", "Men", "Blue", "Fall"),
    ("Levis Men Blue Shirt", "Apparel > Topwear > Shirts", "Men", "Blue", "Summer"),
    ("Levis Men Navy Blue Shirt", "Apparel > Topwear > Shirts", "Men", "Navy Blue", "Fall"),
    ("Fossil Women Black Watch", "Accessories > Watches > Watches", "Women", "Black", "Winter"),
    ("Titan Women Silver Watch", "Accessories > Watches > Watches", "Women", "Silver", "Summer"),
    ("Hidesign Women Brown Belt", "Accessories > Belts > Belts", "Women", "Brown", "Summer"),
    ("Baggit Women Red Wallet", "Accessories > Wallets > Wallets", "Women", "Red", "Summer"),
]


def features(products=PRODUCTS):
    cleaner = TitleCleaner("english")
    return {
        "levels": np.array(["product_category", "product_type", "product_details"]),
        "labels": np.array([p[1].split(" > ") for p in products]),
        "attributes": np.array(["gender", "colour", "season"]),
        "attribute_values": np.array([p[2:] for p in products]),
        "category": np.array([p[1] for p in products]),
        "clean_titles": np.array([cleaner(p[0]) for p in products]),
    }


@pytest.fixture(scope="module")
def fields():
    return Fields(features())


@pytest.fixture(scope="module")
def search(fields):
    return TextSearch([p[0] for p in PRODUCTS], features()["clean_titles"].tolist(), fields)


def ranked(search, query, category_probs=None, mask=None):
    """The reading, every product's score (0 where it did not match), the matches best first, and a function
    that explains some of them."""
    reading = search.read(query)
    rows, scores, parts = search.score(reading, category_probs, mask)
    assert (np.diff(rows) > 0).all() and (scores > 0).all()
    every = np.zeros(len(PRODUCTS), dtype=np.float32)
    every[rows] = scores
    order = [int(i) for i in np.argsort(-every, kind="stable") if every[i] > 0]

    def explain(chosen, categories=None):
        at = np.searchsorted(rows, chosen)
        return search.explain(chosen, reading, {name: part[at] for name, part in parts.items()}, categories)

    return reading, every, order, explain


def test_words_naming_attribute_values_match_those_attributes(search):
    shoes = np.array([0.9] * 4 + [0.05] * 2 + [0.0] * 4)  # what a text model makes of "running shoes"
    reading, scores, order, _ = ranked(search, "blue running shoes for men", category_probs=shoes)
    assert reading["attributes"] == {"colour": ["Blue"], "gender": ["Men"]}
    assert reading["words"] == ["run", "shoe"]
    # The blue men's running shoe first; then the other sports shoes, then the blue men's shirts: the type asked
    # for outweighs the attributes.
    assert order[0] == 0 and set(order[1:4]) == {1, 2, 3} and set(order[4:6]) == {4, 5}
    w = config.TEXT_SEARCH_WEIGHTS
    assert scores[0] == pytest.approx((w["title"] + w["attributes"] + 0.9 * w["category"]) / sum(w.values()))


def test_plural_singular_and_possessive_forms_are_one_word(search):
    one = ranked(search, "women's watch")[2]
    many = ranked(search, "Women watches")[2]
    assert one[:2] == many[:2] and set(one[:2]) == {6, 7}


def test_a_value_of_several_words_is_read_whole(search):
    reading, _, order, _ = ranked(search, "navy blue shirt")
    assert reading["attributes"] == {"colour": ["Navy Blue"]} and reading["words"] == ["shirt"]
    assert order[0] == 5


def test_unknown_words_have_no_results_and_nothing_pads_the_list(search):
    reading, scores, order, _ = ranked(search, "zzzzqqq", category_probs=np.full(len(PRODUCTS), 0.9))
    assert order == [] and reading["unknown"] == ["zzzzqqq"] and not reading["clean"]
    assert "no product has 'zzzzqqq'" in describe_reading(reading)
    # Only watches have the word: a sure category elsewhere never adds belts and wallets at score 0.
    probs = np.array([0.0] * 6 + [0.5, 0.5, 0.9, 0.9])
    _, scores, order, _ = ranked(search, "watch", category_probs=probs)
    assert set(order) == {6, 7} and (scores[[8, 9]] == 0).all()


def test_scores_are_bounded_and_the_category_part_orders_near_ties(search):
    probs = np.array([0.9, 0.9, 0.9, 0.9, 0.05, 0.05, 0.0, 0.0, 0.0, 0.0])
    for query in ("blue running shoes for men", "blue", "shoes", "men summer shirt"):
        _, scores, _, _ = ranked(search, query, category_probs=probs)
        assert scores.min() >= 0 and scores.max() <= 1, query
    # "blue" alone: every blue product matches; the text model's category decides among them.
    _, scores, order, _ = ranked(search, "blue", category_probs=probs)
    assert set(order) == {0, 2, 3, 4} and set(order[:3]) <= {0, 2, 3}


def test_a_misspelt_word_is_read_as_the_closest_known_one(search):
    reading, _, order, explain = ranked(search, "bleu runing shooes")
    assert reading["corrections"] == {"bleu": "Blue", "runing": "running", "shooes": "shoes"}
    assert reading["attributes"] == {"colour": ["Blue"]} and order[0] in (0, 2)
    assert explain([order[0]])[0][:2] == ["title: running, shoes", "colour: Blue"]
    assert "'bleu' read as 'Blue'" in describe_reading(reading)


def test_filters_mask_the_results(search, fields):
    mask = fields.mask({"gender": "Women"})
    _, scores, order, _ = ranked(search, "blue running shoes", mask=mask)
    assert order == [2] and (scores[~mask] == 0).all()


def test_why_a_product_matched(search):
    _, _, order, explain = ranked(search, "blue running shoes for men", category_probs=np.full(10, 0.8))
    why, other = explain(order[:2], categories=["Footwear > Shoes > Sports Shoes"] * 2)
    assert why == ["title: running, shoes", "colour: Blue", "gender: Men", "Sports Shoes: 80% by the text model"]
    assert other != why and other[-1] == "Sports Shoes: 80% by the text model"


def test_facet_counts_apply_the_other_fields_filters(fields):
    everything = fields.facets()
    assert everything["gender"] == {"Men": 5, "Women": 5}
    facets = fields.facets({"gender": "Women", "colour": ["Blue", "Black"]})
    # gender counts under the colour filter; colour counts under the gender filter.
    assert facets["gender"] == {"Men": 3, "Women": 2}
    assert facets["colour"]["Blue"] == 1 and facets["colour"]["Red"] == 1 and facets["colour"]["White"] == 0
    assert sum(facets["product_category"].values()) == 2
    assert fields.mask({"gender": "Women", "colour": ["Blue", "Black"]}).sum() == 2


def test_unknown_filters_are_refused_in_one_line(fields):
    with pytest.raises(ShoplensError, match="unknown filter field 'color' \\(choose from product_category"):
        fields.mask({"color": "Blue"})
    with pytest.raises(ShoplensError, match="unknown colour 'Teal' \\(choose from Black, Blue"):
        fields.mask({"colour": ["Blue", "Teal"]})


def test_a_value_that_loses_a_stop_word_does_not_take_the_plain_word():
    products = [*PRODUCTS, ("Roadster Men Off White Shirt", "Apparel > Topwear > Shirts", "Men", "Off White", "Fall")]
    search = TextSearch([p[0] for p in products], features(products)["clean_titles"].tolist(),
                        Fields(features(products)))
    assert search.read("white shirt")["attributes"] == {"colour": ["White"]}


def test_a_misspelling_is_read_as_the_commonest_of_the_closest_words():
    products = [*PRODUCTS, *[(f"Roadster Men {c} T-Shirt", "Apparel > Topwear > Tshirts", "Men", c, "Summer")
                             for c in ("Blue", "White", "Black")],
                ("Vantero Men Red Shrit", "Apparel > Topwear > Shirts", "Men", "Red", "Summer")]
    search = TextSearch([p[0] for p in products], features(products)["clean_titles"].tolist(),
                        Fields(features(products)))
    # As near to "shrit" (a misspelling in one title) as to "tshirt", which three titles have.
    assert search.read("tshrits")["corrections"] == {"tshrits": "tshirt"}
