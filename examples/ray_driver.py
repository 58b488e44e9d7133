#!/usr/bin/env python3
"""Explain a whole data set on many machines: `attrib explain-dataset` shards as Ray tasks.

    python examples/ray_driver.py --shards 8 --cpus-per-task 2 --out-dir /shared/out/ig -- \\
        --model /shared/resnet18.pt --input /shared/val_images --resize 256 --center-crop 224 \\
        --normalize imagenet --method integrated-gradients

Everything after `--` goes to `attrib explain-dataset` as it is (model, data set, method and its
flags). The driver
1. writes the run's plan once (`attrib explain-dataset ... --plan-only`): items per block, rows
   per model call and threads, which every shard then follows, so that each item's bits do not
   depend on which task explained it;
2. runs shard K of N (`--shard K/N`) as one Ray task per shard, each with the resources it asks
   for (`--cpus-per-task C`: C cores and C libtorch threads; `--gpus-per-task G`: G GPUs, and pass
   `--device cuda` after `--`);
3. collects the shard summaries and writes one merged `OUT/summary.json`.

Rerunning the same command resumes: every shard skips the blocks already complete.

Ray: `ray.init()` starts a local Ray on this machine (`--num-cpus` caps the cores it offers);
with `RAY_ADDRESS` set (e.g. `RAY_ADDRESS=ray://head:10001` or `auto` on a cluster node), the
tasks go to that cluster. On a cluster, `--out-dir` and every path after `--` must name the same
files on every node (a shared file system), and `--attrib` must run on every node. See
docs/datasets.md.

Exit status: 0 on success, 1 when a shard fails, 75 when Ray cannot be imported or started
(the message says why).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

RAY_UNAVAILABLE = 75


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", type=int, required=True, help="number of shards (Ray tasks)")
    p.add_argument("--out-dir", required=True, help="output folder, shared by all tasks")
    p.add_argument("--cpus-per-task", type=int, default=1, help="cores (and libtorch threads) per task [1]")
    p.add_argument("--gpus-per-task", type=float, default=0, help="GPUs per task [0]")
    p.add_argument("--num-cpus", type=int, default=None, help="cores a local Ray offers (ignored with RAY_ADDRESS)")
    p.add_argument("--attrib", default=None, help="the attrib binary [attrib on PATH, else target/release/attrib]")
    p.add_argument("attrib_args", nargs=argparse.REMAINDER, help="-- then the flags of attrib explain-dataset")
    args = p.parse_args(argv)
    rest = args.attrib_args
    if rest and rest[0] == "--":
        rest = rest[1:]
    for flag in ("--out-dir", "--shard", "--threads", "--plan-only", "--json"):
        if flag in rest:
            p.error(f"{flag} is the driver's to set; remove it after --")
    if args.shards < 1 or args.cpus_per_task < 1:
        p.error("--shards and --cpus-per-task must be at least 1")
    args.attrib_args = rest
    return args


def find_attrib(given):
    if given:
        return str(Path(given).resolve())
    on_path = shutil.which("attrib")
    if on_path:
        return on_path
    local = Path(__file__).resolve().parent.parent / "target" / "release" / "attrib"
    return str(local)


def base_command(attrib, args):
    """attrib explain-dataset with the user's flags, the output folder and the threads per task."""
    return [attrib, "explain-dataset", *args.attrib_args, "--out-dir", str(Path(args.out_dir).resolve()),
            "--threads", str(args.cpus_per_task), "--quiet"]


def shard_command(attrib, args, k):
    """The command line of shard k (1-based) of args.shards."""
    return base_command(attrib, args) + ["--shard", f"{k}/{args.shards}", "--json"]


def run_shard(cmd, threads):
    """Run one shard; its summary (the JSON attrib prints), or an error with attrib's message."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def mean_ci(values):
    """Mean, sample sd and a 95 % interval of the mean (normal approximation), as attrib writes them."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci95": None}
    mean = sum(values) / n
    if n < 2:
        return {"n": 1, "mean": mean, "sd": None, "ci95": None}
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = 1.96 * sd / n ** 0.5
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def merge(summaries, wall_s, args):
    """One summary for the whole data set from the shard summaries (in shard order)."""
    first = summaries[0]
    computed = sum(s["computed"] for s in summaries)
    merged = {k: first[k] for k in ("format", "method", "params", "spec", "model", "input", "device", "plan")}
    merged.update({
        "shard": "all",
        "shards": [s["shard"] for s in summaries],
        "ray": {"tasks": len(summaries), "cpus_per_task": args.cpus_per_task, "gpus_per_task": args.gpus_per_task,
                "address": os.environ.get("RAY_ADDRESS", "local")},
        "items": sum(s["items"] for s in summaries),
        "computed": computed,
        "skipped": sum(s["skipped"] for s in summaries),
        "elapsed_s": wall_s,
        "shard_elapsed_s": [s["elapsed_s"] for s in summaries],
        "items_per_s": computed / wall_s if wall_s > 0 else 0.0,
        "per_item": [r for s in summaries for r in s["per_item"]],
    })
    # `--metrics`: aggregated again over all items (shard intervals do not combine).
    merged["metrics"] = merge_metrics(merged["per_item"])
    return merged


def merge_metrics(records):
    """The summary's `metrics` from all items' records, as attrib aggregates them: deletion and
    insertion areas, infidelity, sensitivity-max, and faithfulness correlation (items where it is
    undefined, `null`, counted apart and left out of the mean); None when no metric was asked."""
    metrics = {}
    if any("deletion_auc" in r or "insertion_auc" in r for r in records):
        for k in ("deletion_auc", "insertion_auc"):
            metrics[k] = mean_ci([r[k] for r in records if r.get(k) is not None])
    for k in ("infidelity", "sensitivity_max"):
        if any(k in r for r in records):
            metrics[k] = mean_ci([r[k] for r in records if r.get(k) is not None])
    k = "faithfulness_correlation"
    if any(k in r for r in records):
        asked = [r[k] for r in records if k in r]
        defined = [v for v in asked if v is not None]
        metrics[k] = {**mean_ci(defined), "undefined": len(asked) - len(defined)}
    return metrics or None


def write_atomic(path, value):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    attrib = find_attrib(args.attrib)
    out = Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # The plan first, once: every shard follows it.
    plan_cmd = base_command(attrib, args) + ["--plan-only"]
    plan = subprocess.run(plan_cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.cpus_per_task)))
    if plan.returncode != 0:
        print(f"error: planning failed: {plan.stderr.strip()}", file=sys.stderr)
        return 1
    try:
        import ray
    except ImportError as e:
        print(f"error: cannot import ray ({e}); install it with `.venv/bin/python -m pip install -r requirements.txt`", file=sys.stderr)
        return RAY_UNAVAILABLE
    try:
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    except Exception as e:  # Ray raises many kinds of errors when it cannot start
        print(f"error: cannot start Ray: {e}", file=sys.stderr)
        return RAY_UNAVAILABLE
    try:
        task = ray.remote(run_shard).options(num_cpus=args.cpus_per_task, num_gpus=args.gpus_per_task, max_retries=1)
        clock = time.perf_counter()
        refs = [task.remote(shard_command(attrib, args, k), args.cpus_per_task) for k in range(1, args.shards + 1)]
        try:
            summaries = ray.get(refs)
        except Exception as e:
            print(f"error: a shard failed: {e}", file=sys.stderr)
            return 1
        wall_s = time.perf_counter() - clock
    finally:
        ray.shutdown()
    merged = merge(summaries, wall_s, args)
    write_atomic(out / "summary.json", merged)
    print(f"{merged['computed']} items explained by {args.shards} Ray tasks in {wall_s:.1f} s "
          f"({merged['items_per_s']:.1f} items/s), {merged['skipped']} skipped as done; summary: {out / 'summary.json'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
