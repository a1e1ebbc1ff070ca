"""How far the N-dimensional time iteration is from a finer one, and served models from both.

  python -m benchmarks.reference_convergence --thetas=6               # grids against the finest
  python -m benchmarks.reference_convergence --thetas=12 --grids=cubic:15,7,15;linear:15,7,15 \
      --models=saved_models/rank_zlb_inertia

Thetas are drawn uniformly inside the economy's existence rule (seed `--seed`). The first grid
of `--grids` is the yardstick: its ergodic states (2,000 chains per theta) and its policies'
ergodic std; every other grid, and every served model of `--models`, is measured against it as
the accuracy metric measures a network (mean and p95 of |difference| in % of the std, and the
mean per theta). Grids are `order:points` with nodes from `--nodes`.

With `--constraint_chains=N` (an economy with an occasionally binding constraint) it also gives,
at the calibration (the synthetic data's truth), the constraint's ergodic frequency under every
grid and every served model, each on its own N chains of 300 periods:

  python -m benchmarks.reference_convergence --grids="linear:15,7,15;cubic:15,7,15" \
      --thetas=1 --constraint_chains=40000 --models=saved_models/rank_zlb_inertia
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
flags.DEFINE_integer("constraint_chains", 0, "Chains for the constraint's frequency at the "
                     "calibration (0: not measured).", lower_bound=0)

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
  if FLAGS.constraint_chains:
    constraint_frequency(economy, FLAGS.grids.split(";"), nodes, FLAGS.models,
                         FLAGS.constraint_chains)


def constraint_frequency(economy, grids, nodes, models, chains, periods=300):
  """The ergodic frequency of the binding constraint at the calibration: each grid's
  (`Reference.probability_below`) and each served model's on its own simulated chains."""
  from nk_keras import constraint, simulation
  from nk_keras.export import LoadedPolicy
  from nk_keras.reference import time_iteration_nd as nd
  theta = economy.calibration[None].astype(np.float64)
  print(f"{economy.constraint} binding at the calibration, {chains} chains of {periods} "
        f"periods (std error about {100 * np.sqrt(0.05 * 0.95 / chains):.2f} pp at 5 %):")
  for spec in grids:
    order, points = spec.split(":")
    ref = nd.solve(economy, theta, n_grid=tuple(int(k) for k in points.split(",")),
                   n_nodes=nodes, order=ORDERS[order], chains=chains)
    frequency = constraint.frequency(ref)[0] if ref.valid[0] else float("nan")
    print(f"   {spec}: {100 * frequency:.2f} %", flush=True)
  for path in models:
    policy = LoadedPolicy(path)
    state = simulation.ergodic_states(economy, policy, theta, chains, periods=periods)[0]
    values = simulation.batched(policy)(state.astype(np.float32),
                                        np.repeat(theta, chains, 0).astype(np.float32))
    binds = constraint.binds(constraint.slack(economy, theta[0], state, np.asarray(values)))
    print(f"   {path}: {100 * binds.mean():.2f} %", flush=True)


if __name__ == "__main__":
  cli.run(main)
