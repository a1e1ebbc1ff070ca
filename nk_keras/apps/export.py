"""Export a policy: a train-app run to the SavedModel contract, or a SavedModel to ONNX.

  python -m apps.export --run=runs/stepping --out=exports/stepping
  python -m apps.export --model=saved_models/nk_stepping --format=onnx --out=nk_stepping.onnx

--format=savedmodel (the default): the train app already exports to <run>/saved_model; this
rewrites an export from the run's policy.keras, policy.json, run.json and history.csv (e.g. after
the saved_model directory was deleted, or to a place a server reads from), with the accuracy
summary measured anew.

--format=onnx: converts any SavedModel of the export contract (nk_keras/export.py) to one ONNX
file with the same named float32 [batch] inputs and outputs, for serving without TensorFlow
(README, "ONNX"); the conversion is checked against the SavedModel before it is written.
"""

from absl import flags

from nk_keras import cli, files
from nk_keras.options import refused_by

FLAGS = flags.FLAGS

flags.DEFINE_enum("format", "savedmodel", ["savedmodel", "onnx"],
                  "savedmodel: a run's SavedModel (--run); onnx: a SavedModel as ONNX (--model).")
flags.DEFINE_string("run", None, "Output directory of a finished apps.train run (savedmodel).")
flags.DEFINE_string("model", None, "SavedModel directory of the export contract (onnx).")
flags.DEFINE_string("out", None, "SavedModel directory to write (default <run>/saved_model), or "
                    "the .onnx file.")
flags.DEFINE_integer("n_theta", None, "Theta draws of the accuracy summary in the metadata "
                     "(default: the economy's; savedmodel).", lower_bound=5)
flags.DEFINE_bool("overwrite", False, "Replace an existing SavedModel or ONNX file at --out.")
flags.register_multi_flags_validator(
    ["format", "run", "model", "out"],
    lambda f: bool(f["run"]) and not f["model"] if f["format"] == "savedmodel" else
    bool(f["model"] and f["out"]) and not f["run"],
    "--format=savedmodel takes --run, --format=onnx takes --model and --out")
flags.register_multi_flags_validator(["run"], refused_by(files.finished_run), "--run: not a run")
flags.register_multi_flags_validator(["model"], refused_by(files.saved_model),
                                     "--model: not a SavedModel")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.format == "onnx":
    from nk_keras import onnx_export
    check = onnx_export.convert(FLAGS.model, FLAGS.out, overwrite=FLAGS.overwrite)
    print(f"largest difference from the SavedModel on {check['in_box']['points']:,} random "
          f"points: " + ", ".join(f"{name} {c['max_abs_diff']:.2g} (|{name}| up to "
                                  f"{c['max_abs']:.2g})" for name, c in check["outputs"].items())
          + f"; in_box the same at every point ({check['in_box']['inside']:,} inside)")
    print(f"ONNX model at {FLAGS.out}")
    return
  from nk_keras import accuracy, export
  report, out = export.export_run_again(FLAGS.run, FLAGS.out, FLAGS.n_theta, FLAGS.overwrite,
                                        progress=True)
  print(accuracy.one_line(report))
  print(f"SavedModel at {out}")


def run():
  """The console script `nk-export`."""
  cli.run(main)


if __name__ == "__main__":
  run()
