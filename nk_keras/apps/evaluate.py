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

import sys

from absl import flags

from nk_keras import cli, reports

cli.define_flags(reports.EvaluateOptions, reports.EVALUATE_CHECKS, module=__name__)
flags.mark_flag_as_required("model")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  reports.evaluate(cli.options_from_flags(reports.EvaluateOptions),
                   command=" ".join(["python", "-m", "apps.evaluate", *sys.argv[1:]]))


def run():
  """The console script `nk-evaluate`."""
  cli.run(main)


if __name__ == "__main__":
  run()
