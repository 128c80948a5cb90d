"""End-to-end benchmark on a large demo catalog: `make benchmark-scale`.

One pass of the whole pipeline on an N-item demo catalog (100,000 by default):
generate the catalog, make_dataset, build_features, one training epoch of the
image model (`simple` backbone, random weights), feature extraction, the FAISS
index, and Q image queries through the repository the gallery serves from.
Wall time and peak memory of each stage go to reports/benchmarks/scale.json and
scale.md.
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from measure import machine, run_measured, write_report

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
MAX_TOTAL_SECONDS = 30 * 60
MAX_STAGE_PEAK_GB = 8


def stages(catalog, n, queries):
    """The pipeline's commands, in order, as ``(stage, command)``."""
    image_model = ["--classmode", "multilabel", "--modelmode", "image"]
    return [
        ("demo catalog", [*SHOPLENS, "demo-catalog", "--n", str(n)]),
        ("data", [*SHOPLENS, "make-dataset", "--catalog", "demo"]),
        ("features", [*SHOPLENS, "build-features"]),
        ("train 1 epoch (image, simple)",
         [*SHOPLENS, "train", *image_model, "--backbone", "simple", "--weights", "none", "--epochs", "1"]),
        ("extract features", [*SHOPLENS, "extract-features", "--model", "multilabel_image"]),
        ("FAISS index", [*SHOPLENS, "build-index", "--kind", "faiss"]),
        (f"{queries:,} image queries",
         [sys.executable, str(Path(__file__).resolve()), "queries", "--catalog", str(catalog), "--n", str(queries)]),
    ]


def run_queries(catalog, n, k=10):
    """Load the repository once, then query it with ``n`` catalog photos, one at a time."""
    from shoplens.search.repository import Repository

    repository = Repository.load()
    photos = sorted((catalog / "images").glob("*.jpg"))[:n]
    started = time.perf_counter()
    for photo in photos:
        repository.similar_to_image(photo, k=k)
    seconds = time.perf_counter() - started
    print(f"{len(photos):,} image queries in {seconds:.1f} s ({1000 * seconds / len(photos):.1f} ms each)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    queries = sub.add_parser("queries", help="(internal) the query stage, run in its own measured process")
    queries.add_argument("--catalog", type=Path, required=True)
    queries.add_argument("--n", type=int, required=True)
    parser.add_argument("--n", type=int, default=100_000, help="catalog size")
    parser.add_argument("--queries", type=int, default=1000, help="image queries")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch project [default: a temporary one]")
    args = parser.parse_args()
    if args.command == "queries":
        return run_queries(args.catalog, args.n)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-bench-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SHOPLENS_PROJECT_DIR": str(workdir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    catalog = workdir / "data" / "raw" / "demo"
    results = {}
    try:
        for stage, command in stages(catalog, args.n, args.queries):
            print(f"{stage} ...", flush=True)
            seconds, peak = run_measured(command, workdir, env)
            results[stage] = {"seconds": round(seconds, 1), "peak_gb": round(peak / 2**30, 2)}
        summary = json.loads((workdir / "data" / "processed" / "splits" / "summary.json").read_text())
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    total = sum(r["seconds"] for r in results.values())
    peak = max(r["peak_gb"] for r in results.values())
    checks = {f"whole run <= {MAX_TOTAL_SECONDS // 60} min": total <= MAX_TOTAL_SECONDS,
              f"every stage <= {MAX_STAGE_PEAK_GB} GB peak memory": peak <= MAX_STAGE_PEAK_GB}
    command = f"make benchmark-scale  (python benchmarks/scale.py --n {args.n} --queries {args.queries})"
    data = {"command": command, "n_items": args.n, "queries": args.queries, "splits": summary["splits"],
            "stages": results, "total_seconds": round(total, 1), "max_peak_gb": peak, "checks": checks,
            "machine": machine()}
    rows = "\n".join(f"| {stage} | {r['seconds']:.1f} | {r['peak_gb']:.2f} |" for stage, r in results.items())
    checks_md = "\n".join(f"- {'met' if ok else 'NOT met'}: {check}" for check, ok in checks.items())
    markdown = (f"# Scale benchmark\n\n`{command}`: {args.n:,} demo items (splits {summary['splits']}), "
                f"CPU, {data['machine']['cpus']} cores.\n\n| stage | wall s | peak GB |\n|---|---|---|\n{rows}\n"
                f"| **whole run** | **{total:.1f}** | **{peak:.2f}** |\n\n{checks_md}\n\n"
                "Peak memory is the largest sum of resident memory over a stage's process and its workers.\n")
    write_report("scale", data, markdown)


if __name__ == "__main__":
    main()
