"""An economy's reference solution at one theta (docs/models.md): time iteration for rank_zlb.

  python -m apps.reference --economy=rank_zlb --theta=rho_zeta=0.8,sigma_zeta=0.015 --out=DIR

Solves at the calibration with --theta's overrides, prints the policy at -2.5..2.5 ergodic std of
the first state and writes to --out: policy.csv (the table), summary.json (converged,
iterations, time, ergodic std, how often the constraint binds) and policy.png (the served
outputs against the first state, the binding region shaded).
"""

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("economy", "rank_zlb", "Economy (one with a reference solution).")
flags.DEFINE_string("theta", "", "Overrides of the calibration: name=value,...")
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_integer("points", 11, "Table rows between -2.5 and 2.5 ergodic std.", lower_bound=2)
flags.mark_flag_as_required("out")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nk_keras.reference import report
  report.solve_and_write(FLAGS.economy, FLAGS.theta, FLAGS.out, FLAGS.points)


def run():
  """The console script `nk-reference`."""
  cli.run(main)


if __name__ == "__main__":
  run()
