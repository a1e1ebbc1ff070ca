"""How far the N-dimensional time iteration is from a finer one, and served models from both.

  python -m benchmarks.reference_convergence --thetas=6               # grids against the finest
  python -m benchmarks.reference_convergence --thetas=12 --grids=cubic:15,7,15;linear:15,7,15 \
      --models=saved_models/rank_zlb_inertia

Thetas are drawn uniformly inside the economy's existence rule (seed `--seed`). The first grid
of `--grids` is the yardstick: its ergodic states (2,000 chains per theta) and its policies'
ergodic std; every other grid, and every served model of `--models`, is measured against it as
the accuracy metric measures a network (mean and p95 of |difference| in % of the std, and the
mean per theta). Grids are `order:points` with nodes from `--nodes`.
"""

import time

import numpy as np
import tensorflow as tf
from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("economy", "rank_zlb_inertia", "Economy with an N-dimensional reference.")
flags.DEFINE_integer("thetas", 6, "Uniform draws inside the existence rule.", lower_bound=1)
flags.DEFINE_integer("seed", 7, "Seed of the draws.", lower_bound=0)
flags.DEFINE_string("grids", "linear:29,9,29;linear:15,7,15;linear:21,7,21;cubic:11,5,11;"
                    "cubic:15,7,15", "';'-separated order:points per state; the first is the "
                    "yardstick.")
flags.DEFINE_string("nodes", "21,7", "Quadrature nodes per shock for every grid.")
flags.DEFINE_list("models", [], "Served models (SavedModel directories) to measure as well.")

ORDERS = {"linear": 1, "cubic": 3}


def served_policies(path, economy, state, theta):
  """A SavedModel's policies `[n, m, n_pol]` at states `[n, m, S]`, row i at `theta[i]`."""
  serve = tf.saved_model.load(path).signatures["serving_default"]
  n, m, _ = state.shape
  inputs = {k: tf.constant(state[..., i].reshape(-1), tf.float32)
            for i, k in enumerate(economy.state_names)}
  inputs.update({k: tf.constant(np.repeat(theta[:, i], m), tf.float32)
                 for i, k in enumerate(economy.param_names)})
  outputs = {k: tf.cast(v, tf.float64) for k, v in serve(**inputs).items()}
  return economy.policies_from_outputs(outputs).numpy().reshape(n, m, -1)


def report(name, policies, truth, scale, economy):
  error = 100 * np.abs(policies - truth) / scale[:, None, :]               # [n, m, n_pol]
  cells = [f"{p} {error[..., j].mean():.3f} / {np.percentile(error[..., j], 95):.3f}"
           for j, p in enumerate(economy.policy_names)]
  print(f"{name}: mean / p95 " + ", ".join(cells))
  print("   per theta mean: " + "; ".join(
      f"{p} " + " ".join(f"{v:.2f}" for v in error[..., j].mean(1))
      for j, p in enumerate(economy.policy_names)), flush=True)


def main(argv):
  del argv
  from nk_keras import economies
  from nk_keras.reference import time_iteration_nd as nd
  economy = economies.get(FLAGS.economy)
  theta = economy.sample_inside(economy.uniform_prior(), FLAGS.thetas,
                                tf.constant([FLAGS.seed, 7], tf.int32)).numpy().astype(np.float64)
  nodes = tuple(int(k) for k in FLAGS.nodes.split(","))
  solved = []
  for spec in FLAGS.grids.split(";"):
    order, points = spec.split(":")
    grid = tuple(int(k) for k in points.split(","))
    started = time.perf_counter()
    ref = nd.solve(economy, theta, n_grid=grid, n_nodes=nodes, order=ORDERS[order], chains=2000)
    print(f"{spec}: {(time.perf_counter() - started) / len(theta):.1f} s per theta, "
          f"{ref.valid.sum()} of {len(theta)} converged", flush=True)
    solved.append((spec, ref))
  (name, yardstick), others = solved[0], solved[1:]
  valid = np.logical_and.reduce([ref.valid for _, ref in solved])
  state = yardstick.ergodic_sample()
  scale, truth = yardstick.scale()[valid], yardstick.policies(state)[valid]
  print(f"against {name}, {valid.sum()} thetas where every grid converged:")
  for spec, ref in others:
    report(spec, ref.policies(state)[valid], truth, scale, economy)
  for path in FLAGS.models:
    report(path, served_policies(path, economy, state, theta)[valid], truth, scale, economy)


if __name__ == "__main__":
  cli.run(main)
