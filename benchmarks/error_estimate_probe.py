"""Does the residual-only error estimate read a known error right? rank_zlb's reference policy
with an error put in, and served models, through the same evaluation report.

  python -m benchmarks.error_estimate_probe --thetas=12 --size=1.5e-6
  python -m benchmarks.error_estimate_probe --thetas=24 --kinds= --models=saved_models/rank_zlb
  python -m benchmarks.error_estimate_probe --economy=rank_zlb_inertia --cubic --kinds= \
      --thetas=12 --models=saved_models/rank_zlb_inertia

Kinds of error added to the reference (in the policy's units, `--size` times): `none`; `level`
(inflation moved by a constant); `wiggle` (inflation moved by sin(3000 state), not affine in the
state); `wiggle_N` (hours moved so); `float32` (the reference's values rounded to float32). Each
prints the report's `estimated_error` beside the measured error on the same thetas.
"""

import functools

import numpy as np
import tensorflow as tf
from absl import flags

from nk_keras import accuracy, cli, economies, simulation
from nk_keras.export import LoadedPolicy

FLAGS = flags.FLAGS
flags.DEFINE_integer("thetas", 12, "Uniform draws of the box (seed 0).", lower_bound=1)
flags.DEFINE_float("size", 1.5e-6, "Size of the error put in, in the policy's units.")
flags.DEFINE_list("kinds", ["none", "level", "wiggle", "wiggle_N", "float32"],
                  "Errors put into the reference.")
flags.DEFINE_list("models", [], "Served models of the economy (SavedModel directories) to probe "
                  "too.")
flags.DEFINE_string("economy", "rank_zlb", "The economy (two policies, N and Pi, for --kinds).")
flags.DEFINE_bool("cubic", False, "Measure against cubic time iteration on the default grid "
                  "instead of the economy's own reference (an N-dimensional one: 45-65 s per "
                  "theta; the default linear grid is off by several % of Pi's std).")
flags.DEFINE_integer("seed", 0, "Seed of the report's theta draws.", lower_bound=0)


def with_error(base, kind, size):
  """`base` (a policy `[m, 2]`: N, Pi) with the error `kind` of `size` added."""
  def policy(state, theta):
    p = base(state, theta)
    if kind == "float32":
      return tf.cast(tf.cast(p, tf.float32), p.dtype)
    one = tf.ones_like(p[:, :1])
    wiggle = tf.sin(3000.0 * tf.cast(state[:, :1], p.dtype))
    shape = {"none": 0.0 * one, "level": one, "wiggle": wiggle, "wiggle_N": wiggle}[kind]
    column = 0 if kind == "wiggle_N" else 1
    return p + size * tf.concat([shape, 0 * one] if column == 0 else [0 * one, shape], axis=1)
  return policy


def show(economy, label, policy):
  report = accuracy.evaluate(economy, policy, n_theta=FLAGS.thetas, seed=FLAGS.seed, mc=4)
  for name in economy.policy_names:
    e = report["estimated_error"][name]
    print(f"{label:>24} {name:>3}: estimated {e['mean']:.4f} / {e['p95']:.4f}, measured "
          f"{e['measured_mean_same_thetas']:.4f}, Spearman {e['spearman_over_thetas']:.2f}",
          flush=True)


def main(_):
  economy = economies.get(FLAGS.economy)
  if FLAGS.cubic:
    from nk_keras.reference import time_iteration_nd
    economy.reference = functools.partial(time_iteration_nd.solve, economy, order=3)
  if FLAGS.kinds:
    theta = accuracy.draw_box(economy, FLAGS.thetas, seed=FLAGS.seed).numpy().astype(np.float64)
    # Rows of the report's draws (the same seed): the reference serves exactly these thetas.
    reference = economy.reference(np.concatenate([economy.calibration[None], theta]))
    base = simulation.batched(reference.as_policy())
  for kind in FLAGS.kinds:
    show(economy, f"reference + {kind}", with_error(base, kind, FLAGS.size))
  for path in FLAGS.models:
    show(economy, path, LoadedPolicy(path))


if __name__ == "__main__":
  cli.run(main)
