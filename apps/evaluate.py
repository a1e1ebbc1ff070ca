"""Accuracy of an exported policy against the closed form (MODEL.md section 6), with figures.

  python -m apps.evaluate --model=runs/stepping/saved_model

Loads any SavedModel of the export contract (nk_keras/export.py). Writes to --out (default: a
sibling of the model directory named `<model>_evaluation`, e.g. runs/stepping/saved_model ->
runs/stepping/saved_model_evaluation, so it never writes inside the SavedModel nor over the
evaluation.* the train app leaves next to it):
  evaluation.md, evaluation.json   the error tables (accuracy.write)
  policy_<name>.png                each policy against each parameter, network vs closed form
  errors.png                       histograms of log10 scale-normalised error per state level
  loss.png                         training history, if history.csv sits next to the model
and prints the Markdown tables.
"""

import os

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "SavedModel directory (the export contract).")
flags.DEFINE_string("out", None, "Output directory; default <model>_evaluation.")
flags.DEFINE_integer("n_theta", 20_000, "Theta draws, uniform in the box.", lower_bound=100)
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
  from nk_keras import accuracy, export, plots, simulation
  policy = export.LoadedPolicy(FLAGS.model)
  economy = policy.economy
  # Checked before the long evaluation, so a bad --out fails at once.
  out = cli.writable_dir(FLAGS.out or default_out(FLAGS.model, "evaluation"))
  report = accuracy.evaluate(economy, simulation.batched(policy), n_theta=FLAGS.n_theta,
                             seed=FLAGS.seed)
  accuracy.write(report, out)
  written = ["evaluation.md", "evaluation.json"]
  for name, fig in plots.policy_vs_params(economy, policy).items():
    written.append(os.path.basename(plots.save(fig, os.path.join(out, f"policy_{name}.png"))))
  plots.save(plots.error_histograms(report, economy.policy_names),
             os.path.join(out, "errors.png"))
  written.append("errors.png")
  history = history_path(FLAGS.model)
  rows = plots.read_history(history) if history else None
  if rows and "loss" in rows:
    plots.save(plots.loss_curve(rows), os.path.join(out, "loss.png"))
    written.append("loss.png")
  print(accuracy.markdown(report))
  print(f"wrote {', '.join(written)} to {out}"
        + ("" if "loss.png" in written else " (no readable history.csv next to the model)"))


if __name__ == "__main__":
  cli.run(main)
