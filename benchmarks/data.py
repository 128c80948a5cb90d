"""Benchmark of the data stages on a large demo catalog: `make benchmark-data`.

Three times: generate an N-item demo catalog, then run make_dataset and
build_features on it from scratch, measuring wall time and peak memory of each.
Medians go to reports/benchmarks/data.json and data.md.
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from measure import machine, median, run_measured, write_report

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
TARGETS = {"demo_catalog_seconds": 120, "data_plus_features_seconds": 120, "data_plus_features_peak_gb": 4}


def one_run(workdir, n):
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    env = {"SHOPLENS_PROJECT_DIR": str(workdir)}
    gen_s, gen_peak = run_measured([*SHOPLENS, "demo-catalog", "--n", str(n)], workdir, env)
    data_s, data_peak = run_measured([*SHOPLENS, "make-dataset", "--catalog", "demo"], workdir, env)
    feat_s, feat_peak = run_measured([*SHOPLENS, "build-features"], workdir, env)
    return {
        "demo_catalog_seconds": gen_s,
        "demo_catalog_peak_gb": gen_peak / 2**30,
        "data_seconds": data_s,
        "features_seconds": feat_s,
        "data_plus_features_seconds": data_s + feat_s,
        "data_plus_features_peak_gb": max(data_peak, feat_peak) / 2**30,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="catalog size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder [default: a temporary one]")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-bench-data-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runs = []
    try:
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs} on {args.n:,} items in {workdir}", flush=True)
            runs.append(one_run(workdir, args.n))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    medians = {key: round(median([r[key] for r in runs]), 2) for key in runs[0]}
    command = f"make benchmark-data  (python benchmarks/data.py --n {args.n} --runs {args.runs})"
    data = {"command": command, "n_items": args.n, "runs": runs, "median": medians, "targets": TARGETS,
            "machine": machine()}
    rows = "\n".join(
        f"| {key} | {value:.2f} | {'<= ' + str(TARGETS[key]) if key in TARGETS else ''} | "
        f"{('yes' if value <= TARGETS[key] else 'NO') if key in TARGETS else ''} |"
        for key, value in medians.items()
    )
    markdown = (f"# Data stages benchmark\n\n`{command}` on {args.n:,} demo items, "
                f"median of {args.runs} runs, {data['machine']['cpus']} CPUs.\n\n"
                f"| measure | median | target | met |\n|---|---|---|---|\n{rows}\n\n"
                "Peak memory is the largest sum of resident memory over the process and its workers.\n")
    write_report("data", data, markdown)


if __name__ == "__main__":
    main()
