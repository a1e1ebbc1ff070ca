"""Export a run of the train app to the SavedModel contract (README, nk_keras/export.py).

  python -m apps.export --run=runs/stepping --out=exports/stepping

The train app already exports to <run>/saved_model; this rewrites an export from the run's
policy.keras, policy.json, run.json and history.csv (e.g. after the saved_model directory was
deleted, or to a place a server reads from), with the accuracy summary measured anew.
"""

import os
import sys

if not __package__:  # run as a file, `python apps/<app>.py`: the repository first on the path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from nk_keras import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("run", None, "Output directory of a finished apps.train run.")
flags.DEFINE_string("out", None, "SavedModel directory to write; default <run>/saved_model.")
flags.DEFINE_integer("n_theta", None, "Theta draws of the accuracy summary in the metadata "
                     "(default: the economy's).",
                     lower_bound=100)
flags.DEFINE_bool("overwrite", False, "Replace an existing SavedModel at --out.")
flags.mark_flag_as_required("run")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nk_keras import accuracy, export
  from nk_keras.network import ExtendedPolicy
  run = FLAGS.run
  if not os.path.isdir(run):
    raise cli.UsageError(f"no run directory at {run!r}")
  if not os.path.isfile(os.path.join(run, "policy.keras")):
    if os.path.isdir(os.path.join(run, "backup")):
      raise cli.UsageError(f"the run in {run!r} is unfinished; rerun its train command to "
                           f"resume and finish it, which also exports it")
    raise cli.UsageError(f"{run!r} holds no trained policy (policy.keras): not an apps.train run")
  out = FLAGS.out or os.path.join(run, "saved_model")
  try:
    policy = ExtendedPolicy.load(run)
  except Exception as e:  # Keras raises many types for a corrupt file; all mean the same here
    raise export.ModelError(f"cannot load the policy in {run!r}: {str(e).splitlines()[0]}")
  if os.path.isdir(out) and os.listdir(out):
    # Only ever replace a SavedModel, so a mistyped --out cannot take other files with it.
    if not os.path.isfile(os.path.join(out, "saved_model.pb")):
      raise cli.UsageError(f"{out!r} exists and is not a SavedModel; choose another --out")
    if not FLAGS.overwrite:
      raise cli.UsageError(f"{out!r} holds a SavedModel already; pass --overwrite to replace it")
  elif os.path.exists(out) and not os.path.isdir(out):
    raise cli.UsageError(f"{out!r} is a file; choose another --out")
  # The new export is written beside --out and replaces it only once complete: a run that cannot
  # be exported (no run.json, a failed evaluation) leaves the old SavedModel as it was.
  cli.writable_dir(os.path.dirname(os.path.abspath(out)), output=False)
  report = export.write_replacing(out, lambda tmp: export.export_run(
      policy, run, tmp, n_theta=FLAGS.n_theta, progress=True))
  print(accuracy.one_line(report))
  print(f"SavedModel at {out}")


def run():
  """The console script `nk-export`."""
  cli.run(main)


if __name__ == "__main__":
  run()
