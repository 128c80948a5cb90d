"""Progress of long work: a bar on a terminal, plain lines every few seconds in a log."""
import io
import re

from tqdm import tqdm

from shoplens import progress
from shoplens.progress import ProgressLines, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_plain_line_every_interval_and_a_terminal_a_bar(monkeypatch):
    log = io.StringIO()
    with progress_bar(total=5, desc="extracting features", file=log) as bar:
        bar.update(2)  # sooner than the interval: no line
    assert log.getvalue() == ""

    monkeypatch.setattr(progress, "LOG_INTERVAL", 0)
    with progress_bar(total=5, desc="extracting features", file=log) as bar:
        for _ in range(5):
            bar.update()
    # One line per step, none once all is done; no carriage return.
    assert re.fullmatch(r"(extracting features: [1-4]/5 items, 0 s\n){4}", log.getvalue()), log.getvalue()
    assert [int(n) for n in re.findall(r": (\d)/5", log.getvalue())] == [1, 2, 3, 4]

    log = io.StringIO()
    assert list(progress_bar(range(3), desc="comparing similar photos", unit="image", file=log)) == [0, 1, 2]
    assert log.getvalue() == "comparing similar photos: 1/3 images, 0 s\ncomparing similar photos: 2/3 images, 0 s\n"

    assert isinstance(progress_bar(total=5, file=Terminal()), tqdm)
    assert not isinstance(progress_bar(total=5, file=io.StringIO()), tqdm)
    quiet = io.StringIO()
    with progress_bar(total=5, progress=False, file=quiet) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""
    assert isinstance(ProgressLines(range(4)), ProgressLines) and ProgressLines(range(4)).total == 4


def test_training_in_a_log_writes_plain_lines_within_and_after_each_epoch(demo_project, tmp_path, monkeypatch,
                                                                         capsys):
    from shoplens.models.train_model import train_model

    project, summary = demo_project
    processed = project / "data" / "processed"
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0)  # a line after every step
    meta = train_model("multilabel", "image", backbone="simple", weights="none", epochs=2, batch_size=64,
                       processed_dir=processed, features_dir=processed / "features", models_dir=tmp_path / "models",
                       logs_dir=tmp_path / "logs")  # the default verbose, with output captured: no terminal
    out = capsys.readouterr().out
    items = summary["splits"]["train"]
    assert meta["epochs_run"] == 2 and "\r" not in out
    for epoch in (1, 2):
        steps = re.findall(rf"^epoch {epoch}/2: ([\d,]+)/{items:,} items, \d+ s$", out, re.MULTILINE)
        assert [int(s.replace(",", "")) for s in steps] == list(range(64, items, 64))  # the last step: the next line
        assert re.search(rf"^epoch {epoch}/2: {items:,} items, \d+ s; loss [\d.]+, val_loss [\d.]+; "
                         r"val accuracy product_category [\d.]+, product_type [\d.]+, product_details [\d.]+$",
                         out, re.MULTILINE), out
