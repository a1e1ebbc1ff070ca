"""Existence labels for rank_zlb_inertia: uniform draws of its box, each solved by the library's
N-dimensional time iteration on a coarse grid (9 x 5 x 9 states, 9 x 3 nodes), resumable.

  python docs/existence/inertia_labels.py 2400 0 docs/existence/inertia_labels.csv

The coarse grid's labels are conservative: of 32 draws, 4 it calls non-converged converge at the
accuracy grid (15 x 7 x 15, 15 x 5), and none it calls converged fails there. The draws are
`existence.rule_confusion`'s for the same seed.
"""

import os
import sys
import time

import numpy as np
import tensorflow as tf

from nk_keras import economies
from nk_keras.reference import time_iteration_nd

GRID, NODES, BLOCK = (9, 5, 9), (9, 3), 16


def main(n, seed, path):
  economy = economies.get("rank_zlb_inertia")
  theta = economy.uniform_prior().sample(n, seed=tf.constant([seed, 11], tf.int32)).numpy()
  theta = theta.astype(np.float64)
  if not os.path.exists(path):
    with open(path, "w") as f:
      f.write(",".join(economy.param_names) + ",converged,iterations,seconds\n")
  done = sum(1 for _ in open(path)) - 1
  for i in range(done, n, BLOCK):
    started = time.perf_counter()
    solved = time_iteration_nd.solve(economy, theta[i:i + BLOCK], n_grid=GRID, n_nodes=NODES)
    seconds = (time.perf_counter() - started) / len(solved.theta)
    with open(path, "a") as f:
      for row, valid, iterations in zip(solved.theta, solved.valid, solved.iterations):
        f.write(",".join(f"{x:.8g}" for x in row) + f",{int(valid)},{int(iterations)},"
                f"{seconds:.3f}\n")
    print(f"{i + len(solved.theta)} of {n}: {seconds:.2f} s per theta", flush=True)


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
