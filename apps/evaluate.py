"""Accuracy of an exported policy against the economy's reference (docs/models.md, "Accuracy metric" of each economy).

  python -m apps.evaluate --model=runs/stepping/saved_model

Loads any SavedModel of the export contract (nk_keras/export.py); the reference is the closed
form (NK) or time iteration (rank_zlb, slower: one solve per theta). Writes to --out (default: a
sibling of the model directory named `<model>_evaluation`, e.g. runs/stepping/saved_model ->
runs/stepping/saved_model_evaluation, so it never writes inside the SavedModel nor over the
evaluation.* the train app leaves next to it):
  evaluation.md, evaluation.json   the error tables (accuracy.write); with a ZLB also the ZLB
                                   frequency and Euler errors at the calibration
  policy_<name>.png                each policy against each parameter, network vs reference
  errors.png                       histograms of log10 scale-normalised error per state level
  policies.png                     (ZLB economies) N, Pi and R against the shock at several
                                   thetas, the ZLB region shaded
  loss.png                         training history, if history.csv sits next to the model
and prints the Markdown tables.
"""

import os
import sys

if not __package__:  # run as a file, `python apps/<app>.py`: the repository first on the path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "SavedModel directory (the export contract).")
flags.DEFINE_string("out", None, "Output directory; default <model>_evaluation.")
flags.DEFINE_integer("n_theta", None, "Theta draws, uniform in the box (where an equilibrium "
                     "exists); default the economy's: 20,000 for nk, 500 for rank_zlb (time "
                     "iteration, 0.2-1 s per theta).",
                     lower_bound=5)
flags.DEFINE_integer("sweep_points", 0, "Points per parameter in policy_<name>.png; 0: 41 with "
                     "a closed form, 15 with time iteration.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of the theta draws and residual shocks.", lower_bound=0)
flags.mark_flag_as_required("model")


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


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nk_keras import accuracy, export, plots, simulation, zlb_plots
  policy = export.LoadedPolicy(FLAGS.model)
  economy = policy.economy
  # Checked before the long evaluation, so a bad --out fails at once.
  out = cli.writable_dir(FLAGS.out or default_out(FLAGS.model, "evaluation"))
  closed = simulation.has_closed_form(economy)
  report = accuracy.evaluate(economy, simulation.batched(policy), n_theta=FLAGS.n_theta,
                             seed=FLAGS.seed, progress=True)
  accuracy.write(report, out)
  written = ["evaluation.md", "evaluation.json"]
  points = FLAGS.sweep_points or (41 if closed else 15)
  for name, fig in plots.policy_vs_params(economy, policy, n_grid=points).items():
    written.append(os.path.basename(plots.save(fig, os.path.join(out, f"policy_{name}.png"))))
  scale = "|{name}| at 1 ergodic std" if closed else "the reference's ergodic std of {name}"
  plots.save(plots.error_histograms(report, economy.policy_names, scale),
             os.path.join(out, "errors.png"))
  written.append("errors.png")
  if hasattr(economy, "notional_log_rate"):   # an economy with a ZLB
    plots.save(zlb_plots.policies_vs_state(economy, simulation.batched(policy)),
               os.path.join(out, "policies.png"))
    written.append("policies.png")
  history = history_path(FLAGS.model)
  rows = plots.read_history(history) if history else None
  if rows and "loss" in rows:
    plots.save(plots.loss_curve(rows), os.path.join(out, "loss.png"))
    written.append("loss.png")
  print(accuracy.markdown(report))
  print(f"wrote {', '.join(written)} to {out}"
        + ("" if "loss.png" in written else " (no readable history.csv next to the model)"))


def run():
  """The console script `nk-evaluate`."""
  cli.run(main)


if __name__ == "__main__":
  run()
