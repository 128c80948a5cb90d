"""Benchmark of the web gallery's JSON API under load: `make benchmark-serve`.

Builds a demo project (demo catalog, data, features, the image and text models,
image embeddings, search index) in a scratch folder, or uses the one given with
--project (building it there first if it has no embeddings yet), starts the
real server (`shoplens serve`, waitress) on a free port and, from this second
process, runs 20 concurrent keep-alive clients for 30 s against each of
`/api/similar/<id>` and `/api/search?q=`. Median and 95th-percentile latency,
throughput and errors go to reports/benchmarks/serve.json and serve.md, with
screenshots of the page at desktop and phone widths in reports/benchmarks/.

`--target container` runs the same load against the gallery in its container image
(Dockerfile), built and run on a Docker engine of the benchmark's own
(benchmarks/container.py; root, minutes), with the project mounted read-only:
reports/benchmarks/serve_container.json and .md, beside the bare server's figures
of serve.json where those were measured.
"""
import argparse
import collections
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from measure import REPORTS, machine, run_measured, write_report

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
P95_MS = 60  # /api/similar and /api/search alike
CONTAINER_SLOWDOWN = 1.5  # the gallery in its container against the bare server: median and p95, at most
QUERY_WORDS = ["blue", "black", "white", "red", "men", "women", "casual", "sports", "shoes", "jeans", "shirt",
               "dress", "watch", "bag", "summer", "winter", "cotton", "slim", "running", "formal"]


def build_project(project, n, epochs):
    """The demo project the gallery test uses, at benchmark size."""
    project.mkdir(parents=True, exist_ok=True)
    env = {"SHOPLENS_PROJECT_DIR": str(project), "TF_CPP_MIN_LOG_LEVEL": "3"}
    train = ["train", "--classmode", "multilabel", "--backbone", "simple", "--weights", "none", "--epochs", str(epochs)]
    steps = [["demo-catalog", "--n", str(n)],
             ["make-dataset", "--catalog", "demo"],
             ["build-features"],
             [*train, "--modelmode", "image"],
             [*train, "--modelmode", "text"],
             ["extract-features"],
             ["build-index"]]
    for step in steps:
        print("shoplens", " ".join(step), flush=True)
        run_measured([*SHOPLENS, *step], project, env)


def start_server(project, threads):
    """Start `shoplens serve` on a free port; return the process and its base URL once it answers."""
    env = {**os.environ, "SHOPLENS_PROJECT_DIR": str(project), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [*SHOPLENS, "serve", "--port", "0", "--threads", str(threads)]
    server = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    log = collections.deque(maxlen=40)  # waitress says "Task queue depth" under load: kept, not printed
    for line in server.stdout:
        log.append(line)
        found = re.search(r"http://[\d.]+:\d+", line)
        if found:
            print(line, end="", flush=True)
            threading.Thread(target=lambda: log.extend(server.stdout), daemon=True).start()
            return server, found.group(0)
    raise SystemExit(f"the server stopped before listening (exit status {server.wait()}):\n{''.join(log)}")


def start_container(project, threads, stack):
    """Build the gallery's image on a Docker engine of its own and serve ``project`` from it; return its base URL
    and the image's size in bytes. ``stack`` stops the engine, and the container with it."""
    import container

    print("building the gallery's image (minutes)", flush=True)
    try:
        engine = stack.enter_context(container.Engine())
        base = container.base_image(engine)
    except container.Unavailable as err:
        raise SystemExit(f"--target container: {err}") from None
    image = container.build_image(engine, base)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    container.run_gallery(engine, project, port, image, command=["shoplens", "serve", "--threads", str(threads)])
    base_url = f"http://127.0.0.1:{port}"
    print(f"gallery in its container on {base_url}/", flush=True)
    return base_url, container.image_size(engine, image)


def client(host, port, paths, deadline, latencies, errors, seed):
    """One client: requests on one keep-alive connection, back to back, until the deadline."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection(host, port, timeout=30)
    while time.perf_counter() < deadline:
        path = rng.choice(paths)
        started = time.perf_counter()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            ok = response.status == 200 and body.startswith(b"{")
        except (OSError, http.client.HTTPException) as err:
            errors.append(f"{path}: {err}")
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=30)
            continue
        latencies.append(time.perf_counter() - started)
        if not ok:
            errors.append(f"{path}: HTTP {response.status}")
    connection.close()


def load(base_url, paths, clients, seconds):
    """``clients`` concurrent clients for ``seconds``; latency percentiles, throughput and errors."""
    host, port = base_url.removeprefix("http://").split(":")
    latencies, errors = [], []  # list.append is atomic under the GIL
    deadline = time.perf_counter() + seconds
    threads = [threading.Thread(target=client, args=(host, int(port), paths, deadline, latencies, errors, i))
               for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": len(errors), "error_examples": errors[:5],
            "seconds": round(elapsed, 1), "requests_per_second": round(len(latencies) / elapsed, 1),
            "median_ms": round(float(np.median(ms)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "max_ms": round(float(ms.max()), 1)}


def screenshots(base_url, example_id, photo):
    """The page at desktop and phone widths, a photo search and a product page: reports/benchmarks/gallery_*.png."""
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: no screenshots")
        return []
    from playwright.sync_api import sync_playwright

    REPORTS.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, width, height, path in [("desktop", 1280, 900, "/"), ("phone", 390, 844, "/"),
                                          ("photo", 1280, 900, "/"), ("item", 1280, 900, f"/item/{example_id}")]:
            page = browser.new_page(viewport={"width": width, "height": height}, is_mobile=name == "phone")
            page.goto(base_url + path)
            if name == "photo":
                page.set_input_files("#photo", photo)
                page.wait_for_selector("#photo-result:not([hidden])")
            if name == "phone":
                page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # loads the lazy thumbnails
            page.wait_for_load_state("networkidle")
            page.evaluate("window.scrollTo(0, 0)")
            out = REPORTS / f"gallery_{name}.png"
            page.screenshot(path=out, full_page=name in ("phone", "photo"))
            shots.append(str(out.relative_to(REPORTS.parent.parent)))
            page.close()
        browser.close()
    return shots


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a project folder to serve, kept afterwards; a demo project is "
                                                      "built there first if it has no embeddings [default: a "
                                                      "scratch folder, removed afterwards]")
    parser.add_argument("--n", type=int, default=2000, help="demo catalog size when building a project")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs when building a project")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--threads", type=int, default=None, help="waitress threads [default: config]")
    parser.add_argument("--k", type=int, default=None, help="results per request [default: config]")
    parser.add_argument("--target", choices=["bare", "container"], default="bare",
                        help="the server as `shoplens serve` runs, or in its container image")
    args = parser.parse_args()

    from shoplens import config

    threads = args.threads or config.SERVE_THREADS
    k = args.k or config.GALLERY_K
    project = args.project.resolve() if args.project else Path(tempfile.mkdtemp(prefix="shoplens-bench-serve-"))
    if args.project is None:
        project.chmod(0o755)  # the container's user is not root
    image_bytes = None
    with contextlib.ExitStack() as stack:
        if args.project is None:
            stack.callback(shutil.rmtree, project, ignore_errors=True)
        if not (project / "models" / "embeddings" / "extracted_features.npz").is_file():
            build_project(project, args.n, args.epochs)
        if args.target == "container":
            base_url, image_bytes = start_container(project, threads, stack)
        else:
            server, base_url = start_server(project, threads)
            stack.callback(server.wait, timeout=30)
            stack.callback(server.terminate)
        ids = json.loads(_get(base_url, "/api/items?page_size=200"))["items"]
        ids = [item["id"] for item in ids]
        words = QUERY_WORDS + _title_words(project)
        rng = random.Random(0)
        similar_paths = [f"/api/similar/{i}?k={k}" for i in ids]
        search_paths = [f"/api/search?{urlencode({'q': ' '.join(rng.sample(words, 2)), 'k': k})}" for _ in range(200)]
        for path in similar_paths[:20] + search_paths[:20]:  # warm-up: first calls build caches
            _get(base_url, path)
        results = {}
        for name, paths in [("similar", similar_paths), ("search", search_paths)]:
            print(f"{args.clients} clients for {args.seconds:g} s on /api/{name}", flush=True)
            results[name] = load(base_url, paths, args.clients, args.seconds)
            print(results[name], flush=True)
        # The page looks the same wherever the server runs: screenshots of the bare one only.
        shots = screenshots(base_url, ids[0], _image_of(project, ids[0])) if args.target == "bare" else []
        health = json.loads(_get(base_url, "/api/health"))

    checks = {
        "no errors": all(r["errors"] == 0 for r in results.values()),
        **{f"/api/{name} p95 <= {P95_MS} ms": results[name]["p95_ms"] <= P95_MS for name in ("similar", "search")},
    }
    command = (f"python benchmarks/serve.py --clients {args.clients} --seconds {args.seconds:g} --threads {threads} "
               f"--k {k}")
    bare = _bare_report(args, threads, k, health["items"]) if args.target == "container" else None
    if bare:
        for name, r in results.items():
            checks[f"/api/{name} median and p95 within {CONTAINER_SLOWDOWN:g}x of the bare server's"] = (
                r["median_ms"] <= CONTAINER_SLOWDOWN * bare["endpoints"][name]["median_ms"]
                and r["p95_ms"] <= CONTAINER_SLOWDOWN * bare["endpoints"][name]["p95_ms"])
    command = f"{command} --target container" if args.target == "container" else f"make benchmark-serve  ({command})"
    data = {"command": command, "target": args.target, "items": health["items"], "clients": args.clients,
            "seconds": args.seconds, "waitress_threads": threads, "k": k, "endpoints": results, "checks": checks,
            "screenshots": shots, "machine": machine()}
    if args.target == "container":
        data.update(image_bytes=image_bytes, bare_endpoints=bare["endpoints"] if bare else None)
    rows = []
    for name, r in results.items():
        rows.append((f"/api/{name}" + (" in the container" if args.target == "container" else ""), r))
        if bare:
            rows.append((f"/api/{name} bare", bare["endpoints"][name]))
    rows = "\n".join(f"| {row} | {r['requests']:,} | {r['errors']} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['max_ms']:.1f} | {r['requests_per_second']:.0f} |" for row, r in rows)
    checks_md = "\n".join(f"- {'met' if ok else 'NOT met'}: {check}" for check, ok in checks.items())
    if args.target == "container":
        title = "Gallery server benchmark: in its container"
        compared = (f"the bare server's rows from serve.json ({bare['seconds']:g} s per endpoint)" if bare
                    else "no bare-server figures measured alike in serve.json to compare with")
        where = (f"the gallery in its container image ({image_bytes / 1e9:.2f} GB), the project mounted read-only, "
                 f"host network; {compared}")
    else:
        title, where = "Gallery server benchmark", "the bare server (`shoplens serve`)"
    markdown = (f"# {title}\n\n`{command}` on a {health['items']:,}-item demo catalog: "
                f"{args.clients} concurrent keep-alive clients for {args.seconds:g} s per endpoint, k={k}, "
                f"waitress with {threads} threads, client and server on the same {data['machine']['cpus']} CPUs; "
                f"{where}.\n\n"
                "| endpoint | requests | errors | median ms | p95 ms | max ms | requests/s |\n"
                f"|---|---|---|---|---|---|---|\n{rows}\n\n{checks_md}\n")
    write_report("serve" if args.target == "bare" else "serve_container", data, markdown)


def _bare_report(args, threads, k, items):
    """The bare server's figures in serve.json, if they were measured alike: as many clients, threads, results and
    products (a run's length changes the count of requests, not how long one takes)."""
    try:
        bare = json.loads((REPORTS / "serve.json").read_text())
    except (OSError, ValueError):
        return None
    alike = (bare.get("clients"), bare.get("waitress_threads"), bare.get("k"), bare.get("items")) == (
        args.clients, threads, k, items)
    return bare if alike else None


def _get(base_url, path):
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: HTTP {response.status}: {body[:200]!r}")
        return body
    finally:
        connection.close()


def _image_of(project, item_id):
    """The catalog image of one product, to use as an uploaded photo."""
    splits = project / "data" / "processed" / "splits"
    table = pd.concat([pd.read_parquet(splits / f"{s}.parquet", columns=["id", "image_path"])
                       for s in ("train", "validate", "test")])
    path = Path(table.set_index("id").loc[item_id, "image_path"])
    return path if path.is_absolute() else project / path


def _title_words(project):
    """Words of the catalog's own titles, so searches find something."""
    path = project / "data" / "processed" / "splits" / "train.parquet"
    titles = pd.read_parquet(path, columns=["title"])["title"] if path.is_file() else []
    return sorted({w.lower() for t in titles[:500] for w in str(t).split() if w.isalpha() and len(w) > 3})[:200]


if __name__ == "__main__":
    main()
