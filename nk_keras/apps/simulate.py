"""Simulate the economy under an exported policy, next to its reference at that theta.

  python -m apps.simulate --model=runs/stepping/saved_model --theta=rho_a=0.9,phi_pi=1.5

--theta overrides any of the parameters (the rest stay at the calibration); values must lie in
the training box, where the policy was trained. Writes to --out (default: a sibling of the model
directory named `<model>_simulation`):
  simulation.csv   one path of --periods periods: period, zeta, X_nn, Pi_nn, X_exact, Pi_exact
  irf.csv          responses to a one-std innovation of zeta over --irf_periods (same columns)
  moments.json     std, autocorrelation and correlations: network vs closed form vs analytical
  simulation.png, irf.png
With a ZLB (rank_zlb) the reference is time iteration at --theta (columns <name>_reference, and
R as log R); irf.* become generalised impulse responses to -1 and -3 std innovations (girf_*.csv,
girf.png); moments.json adds ZLB spells (constraint.md: tables); moments annualise Pi and R (x 400).
Policies are in model units (log deviations from the steady state); figures show percent.
"""

from absl import flags

from nk_keras import cli, reports

cli.define_flags(reports.SimulateOptions, reports.SIMULATE_CHECKS, module=__name__)
flags.mark_flag_as_required("model")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  reports.simulate(cli.options_from_flags(reports.SimulateOptions))


def run():
  """The console script `nk-simulate`."""
  cli.run(main)


if __name__ == "__main__":
  run()
