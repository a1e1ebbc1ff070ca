"""What the evaluate and simulate apps do, callable from Python: their options (the definitions
of the apps' flags) and one function each that measures or simulates a policy SavedModel and
writes the files (nk_keras/apps/evaluate.py, nk_keras/apps/simulate.py list them)."""

import dataclasses
import functools
import json
import os

from nk_keras import cli, files, sizes
from nk_keras.errors import UserError
from nk_keras.options import option, refused_by


@dataclasses.dataclass
class EvaluateOptions:
  """The evaluate app's options."""
  model: str = option(None, "SavedModel directory (the export contract).")
  out: str = option(None, "Output directory; default <model>_evaluation.")
  n_theta: int = option(None, "Theta draws, uniform in the box (where an equilibrium exists); "
                        "default the economy's: 20,000 for nk, 500 for rank_zlb (time "
                        "iteration, 0.2-1 s per theta), 40 for rank_zlb_inertia (20-60 s per "
                        "theta), 20 for hank_zlb, 20 for hank_zlb_collapse.", lower=5)
  sweep_points: int = option(0, "Points per parameter in policy_<name>.png; 0: 41 with a closed "
                             "form, 15 with time iteration.", lower=0)
  seed: int = option(0, "Seed of the theta draws and residual shocks.", lower=0)
  record: bool = option(False, "Also make this evaluation the model's own: written into its "
                        "assets/metadata.json as `evaluation`, with the command and commit "
                        "that measured it (a shipped model measured by newer code; its served "
                        "graph and training record stay as they are).")


@dataclasses.dataclass
class SimulateOptions:
  """The simulate app's options."""
  model: str = option(None, "SavedModel directory (the export contract).")
  out: str = option(None, "Output directory; default <model>_simulation.")
  periods: int = option(200, "Periods of the simulated path.", lower=2)
  seed: int = option(0, "Seed of the shocks (and the ergodic start).", lower=0)
  start: str = option("ergodic", "Start of the path: a draw from the ergodic distribution, or "
                      "the steady state.", choices=("ergodic", "zero"))
  theta: str = option("", "Parameter overrides, name=value,...; others at the calibration.")
  irf_periods: int = option(40, "Periods of the impulse response.", lower=1)
  moment_chains: int = option(1000, "Independent stationary chains for the moments.", lower=1)
  moment_periods: int = option(200, "Periods per moment chain.", lower=2)
  girf_draws: int = option(2000, "ZLB: ergodic starts of each GIRF.", lower=1)
  zlb_chains: int = option(200, "ZLB: chains for the spell statistics.", lower=1)
  zlb_periods: int = option(1000, "ZLB: periods per chain.", lower=2)


# What can be refused without TensorFlow: the apps' flag validators, answered at once.
EVALUATE_CHECKS = ((("model",), refused_by(files.saved_model), "--model: not a SavedModel"),)
SIMULATE_CHECKS = EVALUATE_CHECKS + (
    (("theta",), refused_by(functools.partial(cli.parse_assignments, "--theta")),
     "--theta: expected name=value,..."),)


def default_out(model, suffix):
  """`<model>_<suffix>` beside the model directory."""
  return os.path.normpath(os.path.abspath(model)) + "_" + suffix


def history_path(model):
  """The train app writes `<run>/history.csv` beside `<run>/saved_model`; shipped models carry
  theirs in `assets/history.csv`."""
  model = os.path.normpath(os.path.abspath(model))
  for path in (os.path.join(os.path.dirname(model), "history.csv"),
               os.path.join(model, "assets", "history.csv"),
               os.path.join(model, "history.csv")):
    if os.path.isfile(path):
      return path
  return None


def evaluate(options, command=""):
  """The error tables and figures of `options.model` against its economy's reference, written
  to `options.out`; prints the tables. `command`: the command line, recorded with `record`."""
  from nk_keras import accuracy, constraint_plots, export, plots, simulation
  o = options
  policy = export.LoadedPolicy(o.model)
  economy = policy.economy
  sizes.evaluate(o.n_theta or economy.eval_theta, economy)
  # Checked before the long evaluation, so a bad --out fails at once.
  out = cli.writable_dir(o.out or default_out(o.model, "evaluation"))
  closed = simulation.has_closed_form(economy)
  report = accuracy.evaluate(economy, simulation.batched(policy), n_theta=o.n_theta,
                             seed=o.seed, progress=True)
  accuracy.write(report, out)
  written = ["evaluation.md", "evaluation.json"]
  if o.record:
    export.record_evaluation(o.model, accuracy.summary(report), command)
    written.append(f"the evaluation in {os.path.join(o.model, export.METADATA)}")
  points = o.sweep_points or (41 if closed else 15)
  notes = []
  if economy.n_state == 1:
    for name, fig in plots.policy_vs_params(economy, policy, n_grid=points).items():
      written.append(os.path.basename(plots.save(fig, os.path.join(out, f"policy_{name}.png"))))
  else:   # the sweep holds the state at a level of its one ergodic std
    notes.append(f"note: no policy_<name>.png: the policy-against-parameters figure is defined "
                 f"for one state ({economy.name} has {economy.n_state})")
  scale = "|{name}| at 1 ergodic std" if closed else "the reference's ergodic std of {name}"
  if "errors_pct" in report:
    plots.save(plots.error_histograms(report, economy, scale), os.path.join(out, "errors.png"))
    written.append("errors.png")
  else:
    notes.append(f"note: no errors.png: economy {economy.name} has no reference to measure "
                 f"errors against (the residuals are in evaluation.md)")
  if "_households" in report:
    plots.save(plots.households(report), os.path.join(out, "households.png"))
    written.append("households.png")
  if economy.constraint is not None and economy.has_reference():
    plots.save(constraint_plots.policies_vs_state(economy, simulation.batched(policy)),
               os.path.join(out, "policies.png"))
    written.append("policies.png")
  history = history_path(o.model)
  rows = plots.read_history(history) if history else None
  if rows and "loss" in rows:
    plots.save(plots.loss_curve(rows), os.path.join(out, "loss.png"))
    written.append("loss.png")
  print(accuracy.markdown(report))
  for note in notes:
    print(note)
  print(f"wrote {', '.join(written)} to {out}"
        + ("" if "loss.png" in written else " (no readable history.csv next to the model)"))


def simulate(options):
  """A simulated path, impulse responses and moments of `options.model` next to its reference
  at `options.theta`, written to `options.out`; prints the moments."""
  o = options
  overrides = cli.parse_assignments("--theta", o.theta)
  from nk_keras import constraint, constraint_plots, export, plots, simulation
  policy = export.LoadedPolicy(o.model)
  economy = policy.economy
  theta = cli.theta_with(economy, "--theta", overrides)
  sizes.simulate(o, economy)
  out = cli.writable_dir(
      o.out or os.path.normpath(os.path.abspath(o.model)) + "_simulation")
  described = ", ".join(f"{n}={v:g}" for n, v in overrides.items()) or "calibration"
  try:
    solution = simulation.Solution(economy, theta)
  except simulation.NoEquilibrium as e:
    raise UserError(str(e)) from None
  with_constraint = economy.constraint is not None
  path = simulation.simulate(economy, policy, theta, o.periods, o.seed, o.start,
                             solution)
  simulation.write_csv(os.path.join(out, "simulation.csv"), path)
  title = f"Simulated path ({described}, seed {o.seed}, {o.start} start)"
  plots.save(constraint_plots.path(path, economy, title, theta) if with_constraint else
             plots.time_series(path, economy, title), os.path.join(out, "simulation.png"))
  written = ["simulation.csv", "simulation.png"]
  # str() of a float32 is its shortest repr: 0.97, not 0.9700000286102295.
  report = {"theta": {n: float(str(v)) for n, v in zip(economy.param_names, theta)},
            "overrides": overrides, "seed": o.seed, "reference": solution.kind,
            "chains": o.moment_chains, "periods_per_chain": o.moment_periods}
  if with_constraint:
    extras, files = constraint.write_simulation_extras(
        economy, policy, theta, solution, out, described, o.irf_periods, o.girf_draws,
        o.zlb_chains, o.zlb_periods, o.seed)
    report.update(extras)
    written += files
  else:
    irf = simulation.impulse_response(economy, policy, theta, o.irf_periods, solution)
    simulation.write_csv(os.path.join(out, "irf.csv"), irf)
    plots.save(plots.impulse_response(
        irf, economy, f"Response to a one-std innovation raising {economy.state_names[0]} "
        f"({described})"), os.path.join(out, "irf.png"))
    written += ["irf.csv", "irf.png"]
  moments = simulation.moments(economy, policy, theta, o.moment_chains,
                               o.moment_periods, o.seed, solution,
                               constraint.units(economy))
  report.update(note="network and the reference's *_simulated share the simulated states "
                "(their difference is the policy error); analytical are population moments "
                "(their distance to closed_form_simulated is sampling error)", **moments)
  with open(os.path.join(out, "moments.json"), "w") as f:
    json.dump(report, f, indent=2)
  tables = constraint.moments_table(moments)
  if with_constraint:
    tables += "\n" + constraint.statistics_table(report["constraint"])
    with open(os.path.join(out, "constraint.md"), "w") as f:
      f.write(tables)
    written.append("constraint.md")
  print(f"theta: {described}; moments over {o.moment_chains} chains x "
        f"{o.moment_periods} periods\n")
  print(tables)
  print(f"wrote {', '.join(written + ['moments.json'])} to {out}")
