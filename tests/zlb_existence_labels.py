"""Existence labels for the ZLB economy: where does time iteration find a stable equilibrium?

  python tests/zlb_existence_labels.py --n=4000 --out=docs/existence/existence_labels.csv

Draws n parameter vectors uniformly in the box (NumPy seed 0), solves them with the independent
reference solver (tests/zlb_reference.py) in vectorised chunks, and writes one CSV row per draw.
Pure NumPy; imports nothing from nk_keras.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zlb_reference as zr  # noqa: E402

COLUMNS = zr.NAMES + ("converged", "iterations", "zlb_frequency", "sd_logN", "sd_logPi")


def draw(n, seed=0):
  return zr.LOWER + (zr.UPPER - zr.LOWER) * np.random.default_rng(seed).uniform(size=(n, 5))


def label(theta, chunk=250, **solve_kw):
  rows = []
  for k in range(0, len(theta), chunk):
    sol = zr.solve(theta[k:k + chunk], **solve_kw)
    freq = zr.zlb_frequency(sol)
    sd = np.where(sol.converged[:, None], zr.ergodic_sd(sol), np.nan)
    rows.append(np.column_stack([sol.theta, sol.converged, sol.iterations, freq, sd]))
  return np.concatenate(rows)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--n", type=int, default=4000)
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--n_grid", type=int, default=201)
  p.add_argument("--n_nodes", type=int, default=zr.N_NODES)
  p.add_argument("--max_iter", type=int, default=zr.MAX_ITER)
  p.add_argument("--chunk", type=int, default=250)
  a = p.parse_args()
  theta = draw(a.n, a.seed)
  t = time.time()
  table = label(theta, a.chunk, n_grid=a.n_grid, n_nodes=a.n_nodes, max_iter=a.max_iter)
  dt = time.time() - t
  fmt = ["%.10g"] * 5 + ["%d", "%d", "%.6g", "%.6g", "%.6g"]
  os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
  np.savetxt(a.out, table, fmt=fmt, delimiter=",", header=",".join(COLUMNS), comments="")
  conv = table[:, 5] == 1
  print(f"{a.n} draws, n_grid {a.n_grid}, n_nodes {a.n_nodes}, max_iter {a.max_iter}: "
        f"{(~conv).sum()} not converged ({100 * (~conv).mean():.1f} %), {dt:.0f} s "
        f"({1e3 * dt / a.n:.1f} ms per theta)")


if __name__ == "__main__":
  main()
