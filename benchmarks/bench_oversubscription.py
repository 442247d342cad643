#!/usr/bin/env python3
"""Do bnpy's OpenMP threads and NumPy's BLAS threads oversubscribe the cores during fit?

    python benchmarks/bench_oversubscription.py [--samples 512] [--repeats 3]

A training epoch of the article's model (11x11 conv over 32x32x3, BatchNormalization after every
layer -- all four of the article's commented lines enabled --, 1x1 conv, Dense) alternates C
kernels that run on bnpy's OpenMP team with NumPy matmuls that run on OpenBLAS's own threads. The
two pools never compute at the same time in one fit, but each keeps its workers spinning for a
while after a parallel region (libgomp's OMP_WAIT_POLICY/GOMP_SPINCOUNT, OpenBLAS's busy-wait),
so on a machine with as many cores as threads, one pool's spinners can steal the cores the other
needs. Each configuration runs in a fresh process (the thread pools and OMP_* variables are read
once, at start-up), interleaved, and prints the median wall time of an epoch, the CPU time it
burnt (user + system over wall: how many cores were busy) and the ratio to the default.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
import bnpy
from bnpy.experiments.article import build_model as article_model

cfg = json.loads(sys.argv[1])
if cfg.get("bnpy_threads"):
    bnpy.set_num_threads(cfg["bnpy_threads"])
np.random.seed(0)
model = article_model("all-comments", (32, 32, 3))  # the four commented BN lines enabled
model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
n = cfg["samples"]
x = np.random.default_rng(0).random((n, 32, 32, 3), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[np.arange(n) % 10]
model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # warm-up: pools, caches

def epoch():
    t0, c0 = time.perf_counter(), os.times()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    t1, c1 = time.perf_counter(), os.times()
    return t1 - t0, (c1.user - c0.user) + (c1.system - c0.system)

if cfg.get("blas_threads"):
    with threadpool_limits(limits=cfg["blas_threads"], user_api="blas"):
        wall, cpu = epoch()
else:
    wall, cpu = epoch()
pools = {p["user_api"] + ":" + p["internal_api"]: p["num_threads"] for p in threadpool_info()}
print(json.dumps({"wall": wall, "cpu": cpu, "pools": pools, "bnpy": bnpy.get_num_threads()}))
"""

CONFIGS = [
    ("default (bnpy 2 x BLAS 2)", {}, {}),
    ("BLAS 1 thread (threadpoolctl)", {"blas_threads": 1}, {}),
    ("bnpy 1 thread", {"bnpy_threads": 1}, {}),
    ("both 1 thread", {"bnpy_threads": 1, "blas_threads": 1}, {}),
    ("OMP_WAIT_POLICY=passive", {}, {"OMP_WAIT_POLICY": "passive"}),
    ("passive + OPENBLAS 1", {}, {"OMP_WAIT_POLICY": "passive", "OPENBLAS_NUM_THREADS": "1"}),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = {name: [] for name, _, _ in CONFIGS}
    pools = {}
    for _ in range(args.repeats):
        for name, cfg, extra_env in CONFIGS:
            env = dict(os.environ, **extra_env)
            env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
            cfg = dict(cfg, samples=args.samples)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps(cfg)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd="/",
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[name].append((r["wall"], r["cpu"]))
            pools[name] = (r["pools"], r["bnpy"])
    base = statistics.median(w for w, _ in results[CONFIGS[0][0]])
    print(
        "cores: {}   samples per epoch: {}   repeats: {} (medians)".format(
            os.cpu_count(), args.samples, args.repeats
        )
    )
    print(
        "{:<32} {:>9} {:>9} {:>11} {:>8}  pools".format(
            "configuration", "epoch s", "CPU s", "busy cores", "vs def."
        )
    )
    for name, _, _ in CONFIGS:
        wall = statistics.median(w for w, _ in results[name])
        cpu = statistics.median(c for _, c in results[name])
        print(
            "{:<32} {:>9.3f} {:>9.3f} {:>11.2f} {:>8.2f}  {}".format(
                name, wall, cpu, cpu / wall, wall / base, pools[name]
            )
        )


if __name__ == "__main__":
    main()
