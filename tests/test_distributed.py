"""Distributed training: two real worker processes on localhost, a restart that resumes, and MirroredStrategy."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import tensorflow as tf
from conftest import REPO, SHOPLENS, run_cli

from shoplens import ShoplensError, config
from shoplens.models.distribute import read_tf_config
from shoplens.models.train_model import train_model
from shoplens.models.trained import load_model

NAME = "multilabel_text"
RATE = config.LEARNING_RATES["text"]  # per replica
# Text models train fastest.
TRAIN = ["train", "--modelmode", "text", "--batch-size", "16", "--strategy", "multiworker"]
TIMEOUT = 240  # seconds for one run of the workers, start-up included


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def worker_projects(project, tmp_path):
    """One project folder per worker, as on two machines: the same data; their own outputs and temp folder."""
    projects = []
    for i in range(2):
        folder = tmp_path / f"worker{i}"
        (folder / "tmp").mkdir(parents=True)
        (folder / "data").symlink_to(project / "data")
        projects.append(folder)
    return projects


def start_workers(projects, logs, *args):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(projects))]}
    workers = []
    for index, (project, log) in enumerate(zip(projects, logs)):
        env = {**os.environ, "SHOPLENS_PROJECT_DIR": str(project), "TMPDIR": str(project / "tmp"),
               "CUDA_VISIBLE_DEVICES": "",  # two processes would fight over one GPU
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        with open(log, "w") as out:
            workers.append(subprocess.Popen([*SHOPLENS, *TRAIN, *map(str, args)], cwd=project, env=env,
                                            stdout=out, stderr=subprocess.STDOUT))
    return workers


def backup_epoch(project):
    """The epoch of a worker's last complete backup (the chief's in models/, another's in its temp folder)."""
    for pattern in ("models/checkpoints", "tmp/*/checkpoints"):
        backup = next(project.glob(f"{pattern}/{NAME}-backup"), None)
        if backup is None:
            continue
        weights, metadata = backup / "latest.weights.h5", backup / "training_metadata.json"
        try:
            if metadata.stat().st_mtime_ns >= weights.stat().st_mtime_ns:  # written after the weights
                return json.loads(metadata.read_text())["epoch"]
        except (OSError, ValueError):  # not there yet, or being written
            pass
    return None


def freeze_at_common_backup(workers, projects, logs):
    """Stop (SIGSTOP) the workers once both hold a complete backup of the same epoch; return that epoch."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for worker, log in zip(workers, logs):
            assert worker.poll() is None, f"a worker ended early:\n{log.read_text()[-3000:]}"
        epochs = [backup_epoch(project) for project in projects]
        if epochs[0] and epochs[0] == epochs[1]:
            # Frozen, they cannot move on between this check and what the test does next.
            for worker in workers:
                worker.send_signal(signal.SIGSTOP)
            epochs = [backup_epoch(project) for project in projects]
            if epochs[0] and epochs[0] == epochs[1]:
                return epochs[0]
            for worker in workers:
                worker.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no common backup in time:\n" + "\n".join(log.read_text()[-2000:] for log in logs))


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_two_workers_resume_after_a_restart_and_only_the_chief_writes(demo_project, tmp_path):
    chief, other = projects = worker_projects(demo_project[0], tmp_path)
    logs = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    workers = []
    try:
        workers = start_workers(projects, logs, "--epochs", 1000)
        epoch = freeze_at_common_backup(workers, projects, logs)
        # Worker 1 dies; worker 0 stops with a one-line error saying what to do.
        workers[1].kill()
        workers[1].wait()
        workers[0].send_signal(signal.SIGCONT)
        assert workers[0].wait(timeout=TIMEOUT) == 1
        assert "Error: worker 0: lost contact with another worker" in logs[0].read_text()
        assert "Traceback" not in logs[0].read_text()
        assert backup_epoch(chief) == epoch and not (chief / "models" / NAME).exists()

        # Restarted, both go on from the epoch after their backup, to the end of one more epoch.
        workers = start_workers(projects, logs, "--epochs", epoch + 1)
        for worker, log in zip(workers, logs):
            assert worker.wait(timeout=TIMEOUT) == 0, log.read_text()[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    meta = json.loads((chief / "models" / NAME / "model.json").read_text())
    assert meta["first_epoch"] == meta["epochs_run"] == epoch + 1 and len(meta["history"]["loss"]) == 1
    assert f"resumed at epoch {epoch + 1}" in logs[0].read_text()
    assert meta["distribution"] == {"strategy": "multiworker", "replicas": 2, "workers": 2, "global_batch_size": 32,
                                    "learning_rate": 2 * RATE, "chief": True}
    assert meta["options"]["batch_size"] == 16 and meta["options"]["learning_rate"] == RATE
    assert list((chief / "logs").glob(f"{NAME}_*/train"))  # TensorBoard logs
    assert not (chief / "models" / "checkpoints" / f"{NAME}-backup").exists()  # the backup goes once done
    model, _ = load_model("multilabel", "text", models_dir=chief / "models", processed_dir=chief / "data" / "processed")
    assert set(model.output_names) == set(meta["heads"])

    # The other worker wrote its share to its temp folder and cleaned it up: nothing is left anywhere.
    assert "the chief worker writes the model" in logs[1].read_text()
    assert [f for folder in ("models", "logs", "reports") for f in files_under(other / folder)] == []
    assert not list((other / "tmp").glob("shoplens-*"))


def test_mirrored_strategy_trains_on_the_local_devices(demo_project, tmp_path):
    project, _ = demo_project
    data = project / "data" / "processed"
    meta = train_model("multilabel", "text", epochs=1, batch_size=16, strategy="mirrored", verbose=0,
                       processed_dir=data, features_dir=data / "features", models_dir=tmp_path / "models",
                       logs_dir=tmp_path / "logs")
    replicas = len(tf.config.list_logical_devices("GPU")) or 1
    assert meta["distribution"] == {"strategy": "mirrored", "replicas": replicas, "workers": 1,
                                    "global_batch_size": 16 * replicas, "learning_rate": RATE * replicas,
                                    "chief": True}
    assert meta["epochs_run"] == 1 and (tmp_path / "models" / NAME / "model.keras").is_file()


@pytest.mark.parametrize("tf_config, message", [
    (None, "STRATEGY=multiworker needs TF_CONFIG"),
    ('{"cluster": {"worker": ["a:1"]}', "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', 'TF_CONFIG needs a "cluster" and a "task" object'),
    ('{"cluster": {"worker": "a:1,b:2"}, "task": {"type": "worker", "index": 0}}', "must be a list"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "task type 'ps' is not a job"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "task index 2 is not one"),
])
def test_bad_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ShoplensError, match=message):
        read_tf_config()


def test_bad_tf_config_from_the_shell(demo_project, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    result = run_cli(*TRAIN, "--epochs", 1, cwd=demo_project[0])
    assert result.returncode == 1 and "Error: TF_CONFIG is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_keras_the_adapter_was_written_for_is_the_one_pinned_and_installed():
    import re

    import keras

    from shoplens.models.distribute import ADAPTED_FOR_KERAS, check_keras_version

    pinned = re.search(r"^keras==([\d.]+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert pinned.startswith(ADAPTED_FOR_KERAS + "."), (
        f"requirements.txt pins Keras {pinned}, but models/distribute.py mends the private fit of Keras "
        f"{ADAPTED_FOR_KERAS}.x: check adapt_fit_to_strategy against Keras {pinned}, then update ADAPTED_FOR_KERAS")
    assert keras.__version__ == pinned, f"Keras {keras.__version__} is installed, {pinned} is pinned: run make"
    check_keras_version()
    with pytest.raises(ShoplensError, match=r"mends private parts of Keras 3\.15\.x, and Keras 3\.16\.0 is installed"):
        check_keras_version("3.16.0")
