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
girf.png); moments.json adds ZLB spells (zlb.md: tables); moments annualise Pi and R (x 400).
Policies are in model units (log deviations from the steady state); figures show percent.
"""

import json
import os

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "SavedModel directory (the export contract).")
flags.DEFINE_string("out", None, "Output directory; default <model>_simulation.")
flags.DEFINE_integer("periods", 200, "Periods of the simulated path.", lower_bound=2)
flags.DEFINE_integer("seed", 0, "Seed of the shocks (and the ergodic start).", lower_bound=0)
flags.DEFINE_enum("start", "ergodic", ["ergodic", "zero"],
                  "Start of the path: a draw from the ergodic distribution, or the steady state.")
flags.DEFINE_string("theta", "", "Parameter overrides, name=value,...; others at the calibration.")
flags.DEFINE_integer("irf_periods", 40, "Periods of the impulse response.", lower_bound=1)
flags.DEFINE_integer("moment_chains", 1000, "Independent stationary chains for the moments.",
                     lower_bound=1)
flags.DEFINE_integer("moment_periods", 200, "Periods per moment chain.", lower_bound=2)
flags.DEFINE_integer("girf_draws", 2000, "ZLB: ergodic starts of each GIRF.", lower_bound=1)
flags.DEFINE_integer("zlb_chains", 200, "ZLB: chains for the spell statistics.", lower_bound=1)
flags.DEFINE_integer("zlb_periods", 1000, "ZLB: periods per chain.", lower_bound=2)
flags.mark_flag_as_required("model")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Syntax first: fails before TensorFlow loads.
  overrides = cli.parse_assignments("--theta", FLAGS.theta)
  from nk_keras import export, plots, simulation, zlb, zlb_plots
  policy = export.LoadedPolicy(FLAGS.model)
  economy = policy.economy
  theta = cli.theta_with(economy, "--theta", overrides)
  out = cli.writable_dir(
      FLAGS.out or os.path.normpath(os.path.abspath(FLAGS.model)) + "_simulation")
  described = ", ".join(f"{n}={v:g}" for n, v in overrides.items()) or "calibration"

  try:
    solution = simulation.Solution(economy, theta)
  except simulation.NoEquilibrium as e:
    raise cli.UsageError(str(e)) from None
  with_zlb = hasattr(economy, "notional_log_rate")
  path = simulation.simulate(economy, policy, theta, FLAGS.periods, FLAGS.seed, FLAGS.start,
                             solution)
  simulation.write_csv(os.path.join(out, "simulation.csv"), path)
  title = f"Simulated path ({described}, seed {FLAGS.seed}, {FLAGS.start} start)"
  plots.save(zlb_plots.path(path, economy, title) if with_zlb else
             plots.time_series(path, economy, title), os.path.join(out, "simulation.png"))
  written = ["simulation.csv", "simulation.png"]
  # str() of a float32 is its shortest repr: 0.97, not 0.9700000286102295.
  report = {"theta": {n: float(str(v)) for n, v in zip(economy.param_names, theta)},
            "overrides": overrides, "seed": FLAGS.seed, "reference": solution.kind,
            "chains": FLAGS.moment_chains, "periods_per_chain": FLAGS.moment_periods}
  if with_zlb:
    extras, files = zlb.write_simulation_extras(
        economy, policy, theta, solution, out, described, FLAGS.irf_periods, FLAGS.girf_draws,
        FLAGS.zlb_chains, FLAGS.zlb_periods, FLAGS.seed)
    report.update(extras)
    written += files
  else:
    irf = simulation.impulse_response(economy, policy, theta, FLAGS.irf_periods, solution)
    simulation.write_csv(os.path.join(out, "irf.csv"), irf)
    plots.save(plots.impulse_response(
        irf, economy, f"Response to a one-std innovation raising {economy.state_names[0]} "
        f"({described})"), os.path.join(out, "irf.png"))
    written += ["irf.csv", "irf.png"]
  moments = simulation.moments(economy, policy, theta, FLAGS.moment_chains,
                               FLAGS.moment_periods, FLAGS.seed, solution,
                               zlb.UNITS if with_zlb else None)
  report.update(note="network and the reference's *_simulated share the simulated states "
                "(their difference is the policy error); analytical are population moments "
                "(their distance to closed_form_simulated is sampling error)", **moments)
  with open(os.path.join(out, "moments.json"), "w") as f:
    json.dump(report, f, indent=2)
  tables = zlb.moments_table(moments)
  if with_zlb:
    tables += "\n" + zlb.statistics_table(report["zlb"])
    with open(os.path.join(out, "zlb.md"), "w") as f:
      f.write(tables)
    written.append("zlb.md")
  print(f"theta: {described}; moments over {FLAGS.moment_chains} chains x "
        f"{FLAGS.moment_periods} periods\n")
  print(tables)
  print(f"wrote {', '.join(written + ['moments.json'])} to {out}")


if __name__ == "__main__":
  cli.run(main)
