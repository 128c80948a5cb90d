"""A stage publishes all its outputs or none: killed at any point, on a full disk, or beside a second writer."""
import contextlib
import json
import re
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from conftest import REPO, clean_env, make, make_catalog, scratch_project

from shoplens.data.make_dataset import data_version, make_dataset
from shoplens.outputs import publish, read_stage
from shoplens.stages import project_lock

needs_venv = pytest.mark.skipif(not (REPO / ".venv" / ".installed").exists(), reason="needs the project's .venv")

# A second make_dataset run (another SEED) in a child process that SIGKILLs itself just before its n-th
# rename, link or removal in shoplens.outputs: each point between the steps of a publication.
KILLED_RUN = textwrap.dedent("""
    import os, shutil, signal, sys
    from shoplens import outputs
    from shoplens.data.make_dataset import make_dataset

    catalog, interim, processed, kill_at = sys.argv[1:5]
    calls = [0]

    def killing(fn):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return call

    class Module:
        def __init__(self, module, names):
            self.module = module
            for name in names:
                setattr(self, name, killing(getattr(module, name)))

        def __getattr__(self, name):
            return getattr(self.module, name)

    outputs.os = Module(os, ("replace", "rename", "symlink", "unlink"))
    outputs.shutil = Module(shutil, ("rmtree",))
    make_dataset(catalog, min_items=5, seed=7, interim_dir=interim, processed_dir=processed, progress=False)
    print(calls[0])
""")


def splits_state(processed):
    """The data version the published splits say they are, after checking every file agrees with it."""
    folder = processed / "splits"
    record = read_stage(folder)
    summary = json.loads((folder / "summary.json").read_text())
    splits = {name: pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "validate", "test")}
    assert record["version"] == summary["data_version"] == data_version(splits, record["key"])
    return record["version"]


def test_a_kill_at_any_step_of_a_publication_leaves_old_or_new_outputs(tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    interim, processed = tmp_path / "interim", tmp_path / "processed"
    old = make_dataset(catalog, min_items=5, interim_dir=interim, processed_dir=processed, progress=False)
    run = [sys.executable, "-c", KILLED_RUN, catalog, interim, processed]
    steps = int(subprocess.run([*run, "0"], capture_output=True, text=True, check=True).stdout)
    new = splits_state(processed)
    assert new != old["data_version"] and steps >= 3

    seen = set()
    for kill_at in range(1, steps + 1):
        make_dataset(catalog, min_items=5, interim_dir=interim, processed_dir=processed, progress=False)  # old
        killed = subprocess.run([*run, str(kill_at)], capture_output=True, text=True)
        assert killed.returncode == -9, killed.stderr
        seen.add(splits_state(processed))  # whole: the old outputs or the new ones
        make_dataset(catalog, min_items=5, seed=7, interim_dir=interim, processed_dir=processed, progress=False)
        assert splits_state(processed) == new
        versions = [p.name for p in processed.iterdir() if p.name.startswith(".splits.v-")]
        assert versions == [(processed / "splits").resolve().name]  # what killed runs left is gone
    assert seen == {old["data_version"], new}  # killed before the switch, and after it


def test_a_failed_stage_publishes_nothing(tmp_path):
    folder = tmp_path / "stage"
    with publish(folder, "test", {"n": 1}, "v1") as staging:
        (staging / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), publish(folder, "test", {"n": 2}, "v2") as staging:
        (staging / "a.txt").write_text("second")
        raise RuntimeError("the stage failed half-way")
    assert (folder / "a.txt").read_text() == "first" and read_stage(folder)["version"] == "v1"
    assert [p.name for p in tmp_path.iterdir() if p.name != "stage"] == [folder.resolve().name]


def test_the_project_lock_is_held_by_one_writer_at_a_time(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from shoplens.stages import project_lock
        with project_lock(sys.argv[1], what="the test's first writer"):
            print("locked", flush=True)
            time.sleep(3)
        """), tmp_path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    waiter = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from shoplens.stages import project_lock
        with project_lock(sys.argv[1]):
            print("got it")
        """), tmp_path], capture_output=True, text=True, timeout=60)
    assert holder.wait(timeout=60) == 0
    assert waiter.stdout == "got it\n"
    assert waiter.stderr.strip() == f"waiting for the test's first writer (pid {holder.pid}) to finish writing this " \
                                    "project ..."
    with project_lock(tmp_path), project_lock(tmp_path):  # re-entrant within a process
        pass


@needs_venv
def test_two_make_data_runs_at_once_do_not_interleave(tmp_path):
    project = scratch_project(tmp_path / "project")
    runs = [subprocess.Popen(["make", "--no-print-directory", "data", "DEMO_N=1200"], cwd=project, env=clean_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    out = "".join(stdout for _, stdout, _ in results)
    assert out.count("demo catalog: running") == 1 and out.count("demo catalog: up to date") == 1
    assert out.count("data: running") == 1 and out.count("data: up to date") == 1
    assert "waiting for shoplens make-dataset" in "".join(stderr for _, _, stderr in results)
    assert splits_state(project / "data" / "processed")


@contextlib.contextmanager
def small_disk(folder, options):
    """A tmpfs mounted on ``folder`` (root only): a disk that fills up."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", folder], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here ({mounted.stderr.decode().strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], check=False)


@needs_venv
def test_a_full_disk_is_one_line_and_publishes_nothing(tmp_path):
    project = scratch_project(tmp_path / "project")
    catalog = make_catalog(project / "shop")
    processed, interim = project / "data" / "processed", project / "data" / "interim"

    def one_error_line(result):
        assert result.returncode != 0 and "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
        assert len(lines) == 1, result.stderr
        return lines[0]

    with small_disk(processed, "size=400k"):
        make(project, "data", f"CATALOG={catalog}", "MIN_ITEMS=5")
        before = splits_state(processed)
        error = one_error_line(make(project, "features", "IMAGE_SIZE=256", check=False))
        assert re.search(r"data/processed: make features needs [0-9.]+ MB free, the disk has [0-9.]+ KB", error)
        assert not (processed / "features").exists() and splits_state(processed) == before
        assert not [p for p in processed.iterdir() if p.name.startswith(".features")]

        with small_disk(interim, "nr_inodes=4"):  # bytes to spare, but room for few files: the write fails
            error = one_error_line(make(project, "data", "LANGUAGE=german", check=False))
            assert "disk full while writing it" in error and "nothing published" in error
            assert splits_state(processed) == before
        assert "LANGUAGE" not in (project / "params.yaml").read_text()
        make(project, "data", "LANGUAGE=german")  # with room again, the same command goes through
        assert splits_state(processed) != before
