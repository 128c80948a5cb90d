"""The gallery's container image: compose.yaml, and (`make test-container`) the image built from this checkout
on a Docker engine of the test's own, serving a trained demo project mounted read-only."""
import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pandas as pd
import pytest
import yaml
from conftest import REPO

sys.path.append(str(REPO / "benchmarks"))
import container  # noqa: E402  (benchmarks/container.py: the engine and image, shared with the benchmark)
from serve import build_project  # noqa: E402  (the demo project benchmarks/serve.py serves)

# Everything but the gallery's run-time packages stays out of the image.
NOT_IN_IMAGE = ["sphinx", "jupyter_core", "nbconvert", "pytest", "playwright", "ruff", "matplotlib", "cleanlab",
                "keras_hub", "tensorboard"]


def test_compose_builds_this_folder_and_serves_a_project_read_only():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    gallery = compose["services"]["gallery"]
    assert gallery["build"]["context"] == "." and "EXTRA_CA_CERTS" in gallery["build"]["args"]
    assert gallery["ports"] == ["${SHOPLENS_HOST:-127.0.0.1}:${SHOPLENS_PORT:-5000}:5000"]
    assert gallery["volumes"] == [{"type": "bind", "source": "${SHOPLENS_PROJECT_DIR:-.}", "target": "/project",
                                   "read_only": True}]
    assert gallery["read_only"] is True and gallery["tmpfs"] == ["/tmp"]
    # The port the image listens on and its project folder are those compose.yaml maps.
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "SHOPLENS_PORT=5000" in dockerfile and "SHOPLENS_PROJECT_DIR=/project" in dockerfile
    if shutil.which("docker-compose"):  # Debian's docker-compose checks the file against the Compose schema
        checked = subprocess.run(["docker-compose", "--file", REPO / "compose.yaml", "config", "--quiet"],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stderr


@pytest.fixture(scope="module")
def engine():
    engine = container.Engine()
    try:
        engine.start()
    except container.Unavailable as err:
        pytest.skip(f"no Docker engine can run here: {err}")
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def image(engine):
    try:
        base = container.base_image(engine)
    except container.Unavailable as err:
        pytest.skip(str(err))
    tag = container.build_image(engine, base)
    print(f"image {tag}: {container.image_size(engine, tag) / 1e9:.2f} GB")
    return tag


def snapshot(folder):
    """Every path under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A trained demo project (600 products), readable by the image's user, and what it holds."""
    folder = tmp_path_factory.mktemp("container") / "project"
    build_project(folder, n=600, epochs=2)
    folder.chmod(0o755)  # pytest makes its folders private; the image's user is not root
    return folder, snapshot(folder)


@pytest.fixture(scope="module")
def gallery(engine, image, project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = f"shoplens-gallery-{uuid.uuid4().hex[:8]}"
    container.run_gallery(engine, project[0], port, image, name)
    return name, port


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def get_json(port, path):
    status, kind, body = request(port, "GET", path)
    assert status == 200 and kind == "application/json", (path, status, body[:300])
    return json.loads(body)


def catalog(project):
    splits = project / "data" / "processed" / "splits"
    return pd.concat([pd.read_parquet(splits / f"{s}.parquet") for s in ("train", "validate", "test")])


@pytest.mark.container
def test_the_gallery_answers_from_the_container(gallery, project):
    name, port = gallery
    products = catalog(project[0])
    assert get_json(port, "/api/health") == {"status": "ok", "items": len(products)}

    status, kind, page = request(port, "GET", "/")
    assert status == 200 and kind.startswith("text/html")
    first = get_json(port, "/api/items?page_size=1")["items"][0]
    assert str(first["title"]) in page.decode()

    word = first["title"].split()[-1]
    found = get_json(port, f"/api/search?q={word}&k=5")
    assert 1 <= len(found["results"]) <= 5 and found["prediction"]["category"]

    similar = get_json(port, f"/api/similar/{first['id']}?k=5")["results"]
    assert len(similar) == 5 and first["id"] not in [item["id"] for item in similar]

    # A thumbnail is made though the project cannot be written (the gallery keeps it in /tmp).
    status, kind, thumbnail = request(port, "GET", first["thumbnail"])
    assert status == 200 and kind == "image/jpeg" and thumbnail.startswith(b"\xff\xd8")

    row = products.iloc[0]
    photo = (project[0] / row["image_path"]).read_bytes()
    boundary = "shoplens-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n3\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = request(port, "POST", "/api/classify", body,
                                {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, answer[:300]
    answer = json.loads(answer)
    assert answer["prediction"]["category"].count(" > ") == 2 and len(answer["similar"]) == 3
    assert {item["id"] for item in answer["similar"]} <= set(products["id"])


@pytest.mark.container
def test_the_image_runs_the_gallery_alone_as_a_user_and_reports_healthy(engine, image, gallery):
    name, _ = gallery
    assert engine.docker("exec", name, "id", "-u").stdout.strip() == "10001"
    found = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c",
                          f"import importlib.util as u; print([m for m in {NOT_IN_IMAGE!r} if u.find_spec(m)])")
    assert found.stdout.strip() == "[]"
    # Docker runs the image's health check 10 s after the start, then every 10 s.
    deadline = time.monotonic() + 30
    while (health := json.loads(engine.docker("inspect", "--format", "{{json .State.Health}}", name).stdout)) \
            and health["Status"] == "starting" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert health["Status"] == "healthy", health


@pytest.mark.container
def test_the_container_cannot_write_the_project(engine, gallery, project):
    name, _ = gallery
    folder, before = project
    tried = engine.docker("exec", name, "touch", "/project/written", check=False)
    assert tried.returncode != 0 and "Read-only file system" in tried.stderr
    assert snapshot(folder) == before  # serving wrote nothing there: no thumbnails, no lock, no params.yaml


@pytest.mark.container
def test_docker_stop_ends_the_gallery_at_once(engine, gallery):
    name, port = gallery
    seconds, status = container.stop_gallery(engine, name)
    assert seconds < 3, f"docker stop took {seconds:.1f} s"
    assert status == 143  # the server ended by SIGTERM, passed on by the image's init, not killed 10 s later
    with pytest.raises(OSError):
        request(port, "GET", "/api/health")


def test_container_module_says_why_without_dockerd(monkeypatch):
    monkeypatch.setattr(container.shutil, "which", lambda name: None)
    with pytest.raises(container.Unavailable, match="no dockerd or docker command"):
        container.Engine().start()
