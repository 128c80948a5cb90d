"""Every figure is a readable PNG with the panels it promises, labelled so a data scientist can read it."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shoplens.visualization.audit_figures import plot_label_issues
from shoplens.visualization.dataset_figures import plot_class_imbalance, plot_title_lengths
from shoplens.visualization.model_figures import plot_confusion_matrix, plot_reliability, plot_training_curves
from shoplens.visualization.search_figures import plot_search_grid

LEVELS = ["product_category", "product_type", "product_details"]


def panels(fig, path):
    """The figure's axes, once its PNG is checked to be a whole, non-empty image."""
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100
        image.verify()
    return fig.axes


def tick_labels(axis):
    return [label.get_text() for label in axis.get_ticklabels()]


def texts(ax):
    return [t.get_text() for t in ax.texts]


@pytest.fixture(scope="module")
def many_classes():
    """Test labels of 40 classes of 3 to 120 items, predicted right 70 % of the time."""
    rng = np.random.default_rng(0)
    classes = [f"class{c:02d}" for c in range(40)]
    sizes = np.linspace(120, 3, 40).astype(int)
    y_true = np.repeat(classes, sizes)
    y_pred = np.where(rng.random(len(y_true)) < 0.7, y_true, rng.choice(classes, len(y_true)))
    return classes, sizes, y_true, y_pred


def test_a_confusion_matrix_of_many_classes_shows_the_25_most_frequent_with_their_support(many_classes, tmp_path):
    classes, sizes, y_true, y_pred = many_classes
    fig = plot_confusion_matrix(y_true, y_pred, classes[::-1], "multilabel_combined on shop: product_details",
                                tmp_path / "confusion.png")
    matrix, colorbar = panels(fig, tmp_path / "confusion.png")
    assert "share" in colorbar.get_ylabel()
    rows = tick_labels(matrix.yaxis)
    assert rows == [f"class{c:02d} ({sizes[c]})" for c in range(25)]  # most frequent first, with their support
    assert tick_labels(matrix.xaxis) == [*rows, "(other classes)"]
    title = matrix.get_title()
    assert "multilabel_combined on shop" in title and "the 25 most frequent of 40 classes" in title
    share = matrix.images[0].get_array()
    assert share.shape == (25, 26) and np.allclose(share.sum(axis=1), 1)  # a row: where that class's items went
    assert texts(matrix) and all(t.isdigit() or t == "<1" for t in texts(matrix))  # percentages in the cells


def test_a_confusion_matrix_of_few_classes_shows_them_all(tmp_path):
    y_true = ["Jeans"] * 6 + ["Tshirts"] * 4
    y_pred = ["Jeans"] * 5 + ["Tshirts"] * 5
    fig = plot_confusion_matrix(y_true, y_pred, ["Tshirts", "Jeans", "Sneakers"], "demo: product_type",
                                tmp_path / "confusion.png")
    matrix, _ = panels(fig, tmp_path / "confusion.png")
    assert tick_labels(matrix.yaxis) == ["Tshirts (4)", "Jeans (6)", "Sneakers (0)"]
    assert tick_labels(matrix.xaxis) == tick_labels(matrix.yaxis)
    assert sorted(texts(matrix)) == ["100", "17", "83"]
    assert "most frequent" not in matrix.get_title()


def test_training_curves_show_the_loss_and_each_level_in_the_models_order(tmp_path):
    history = {"loss": [2.0, 1.5, 1.2, 1.1], "val_loss": [2.1, 1.7, 1.4, 1.5]}
    for k, level in enumerate(LEVELS):
        history[f"{level}_accuracy"] = [0.3 + 0.1 * k, 0.5, 0.6, 0.7]
        history[f"val_{level}_accuracy"] = [0.3, 0.4, 0.5, 0.55]
    fig = plot_training_curves(dict(sorted(history.items())), "multilabel_image on demo", tmp_path / "training.png",
                               heads=LEVELS, best_epoch=3)
    axes = panels(fig, tmp_path / "training.png")
    assert [ax.get_title() for ax in axes] == ["loss", *(f"{level.replace('_', ' ')} accuracy" for level in LEVELS)]
    assert fig.texts[0].get_text() == "Training of multilabel_image on demo"
    for ax in axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
        assert [line.get_label() for line in ax.get_lines()] == ["train", "validation", "kept (epoch 3)"]


def test_class_imbalance_shows_the_smallest_classes_too_on_a_log_scale(tmp_path):
    sizes = np.geomspace(400, 2, 60).astype(int)
    leaf = np.repeat([f"leaf{c:02d}" for c in range(60)], sizes)
    table = pd.DataFrame({"product_category": np.where(np.arange(len(leaf)) % 2, "Apparel", "Footwear"),
                          "product_type": [f"type{c % 5}" for c in range(len(leaf))], "product_details": leaf})
    fig = plot_class_imbalance(table, LEVELS, tmp_path / "imbalance.png", top=20, name="shop")
    axes = panels(fig, tmp_path / "imbalance.png")
    assert len(axes) == len(LEVELS) and all(ax.get_xscale() == "log" for ax in axes)
    assert fig.texts[0].get_text() == "Class imbalance per level of shop"
    deepest = tick_labels(axes[-1].yaxis)  # top to bottom
    assert deepest[:10] == [f"leaf{c:02d}" for c in range(10)]
    assert deepest[10] == "... 40 classes between ..."
    assert deepest[11:] == [f"leaf{c:02d}" for c in range(50, 60)]  # the smallest classes, the smallest last
    assert "largest/smallest = 200x" in axes[-1].get_title()
    assert sorted(tick_labels(axes[0].yaxis)) == ["Apparel", "Footwear"]


def test_title_lengths_and_reliability_have_a_panel_each(tmp_path):
    table = pd.DataFrame({"product_category": ["Apparel", "Footwear"] * 5, "title": ["Blue Cotton Tshirt 2 pack"] * 10,
                          "clean_title": ["blue cotton tshirt pack"] * 10})
    fig = plot_title_lengths(table, "product_category", tmp_path / "titles.png", name="shop")
    (ax,) = panels(fig, tmp_path / "titles.png")
    assert ax.get_title() == "Title length per product_category of shop, before and after cleaning"

    bins = {"confidence": [0.3, 0.6, 0.9], "accuracy": [0.25, 0.6, 0.95], "items": [5, 10, 40]}
    fig = plot_reliability({level: bins for level in LEVELS}, "multilabel_combined on shop", tmp_path / "rel.png")
    assert [ax.get_title() for ax in panels(fig, tmp_path / "rel.png")] == LEVELS


def test_a_search_grid_shows_each_results_title_category_and_score(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 40, 3), 120, dtype=np.uint8)).save(photo)
    long_title = "Nike Men Blue Running Shoes with a very long name that goes on and on past two lines of text"
    results = [{"id": "10001", "title": long_title, "category": "Footwear > Athletic Shoes > Trail Running Shoes",
                "image_path": str(photo), "score": 0.912},
               {"id": "10002", "title": "Red Top", "category": "Apparel > Topwear > Tops",
                "image_path": str(photo), "score": 0.5}]
    rows = [{"image": str(photo), "caption": "predicted: Footwear > Shoes > Sports Shoes", "results": results},
            {"text": "red top", "results": results[1:]}]
    fig = plot_search_grid(rows, tmp_path / "grid.png", title="shop: similar products")
    axes = panels(fig, tmp_path / "grid.png")
    assert len(axes) == 2 * 3  # a row per query: the query and up to 2 results
    first = axes[1]
    assert first.get_title() == "1. 10001  score 0.912"
    (caption,) = texts(first)
    assert caption.startswith("Nike Men Blue Running") and caption.count("\n") <= 4 and "…" in caption
    assert caption.endswith("Footwear\n> Athletic Shoes\n> Trail Running Shoes")  # a long path: a level a line
    assert texts(axes[4]) == ["Red Top\nApparel > Topwear > Tops"]  # a short path on one line
    assert axes[5].get_title() == "" and not axes[5].images  # no third result for the second query


def test_a_photo_query_shows_the_box_it_was_cropped_to(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((50, 100, 3), 120, dtype=np.uint8)).save(photo)
    result = {"id": "1", "category": "Apparel > Topwear > Tops", "image_path": str(photo)}
    crop = {"box": [50, 0, 100, 50], "width": 100, "height": 50}  # the right half of a wide photo
    fig = plot_search_grid([{"image": str(photo), "crop": crop, "results": [result]},
                            {"image": str(photo), "results": [result]}], tmp_path / "grid.png")
    cropped, _, whole, _ = panels(fig, tmp_path / "grid.png")
    (box,) = cropped.patches
    # The thumbnail pads the photo to a 128-pixel square: the right half of its width, the middle half of its height.
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (63.5, 31.5, 64, 64)
    assert not whole.patches


def test_the_label_issue_grid_has_a_panel_per_product(tmp_path):
    issues = pd.DataFrame({"id": ["a1", "a2"], "given": ["Tshirts", "Jeans"], "suggested": ["Jeans", "Tshirts"],
                           "given_probability": [0.05, 0.1], "suggested_probability": [0.9, 0.8],
                           "image_path": [str(tmp_path / "missing.jpg")] * 2, "title": ["Blue jeans", "Red tee"]})
    fig = plot_label_issues(issues, tmp_path / "issues.png")
    axes = panels(fig, tmp_path / "issues.png")
    assert sum(bool(ax.images) for ax in axes) == 2
