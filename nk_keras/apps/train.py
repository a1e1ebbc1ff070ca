"""Train an extended policy network, export it, and report its accuracy.

  python -m apps.train --regime=stepping --iterations=10000 --out=runs/stepping
  python -m apps.train --flagfile=configs/nk_stepping.flags --out=runs/nk_stepping
  python -m apps.train --economy=rank_zlb --out=runs/rank_zlb   # its shipped recipe

A run that is interrupted (Ctrl-C, kill) resumes from its last checkpoint when the same command
is run again (killed during its export, it finishes the export); on a finished --out the same
command does nothing, and other options are refused; --restart starts over. One run at a time
per --out: a second one is refused. Writes to --out: policy.keras + policy.json (the Keras
model), run.json (options, command, commit, wall time), history.csv, saved_model/ (the
SavedModel contract of README; apps.export rewrites it from the other files), evaluation.json
and evaluation.md. The training options' flags are made from nk_keras.train_options.TrainOptions;
--flagfile reads flags from a file, one per line.

  python -m apps.train --strategy=mirrored --cpu_devices=2 --batch=1000 --out=runs/mirrored

trains on several devices (README, "Training on several devices"); with --strategy=multi_worker
every worker runs the same command with its own TF_CONFIG, and only the chief writes --out.
"""

import os
import sys

from absl import flags

from nk_keras import cli, train_options

FLAGS = flags.FLAGS

cli.define_flags(train_options.TrainOptions, train_options.CHECKS, module=__name__)
flags.DEFINE_integer("log_every", 1000, "Gradient steps per history row.", lower_bound=1)
flags.DEFINE_integer("eval_theta", None, "Theta draws for the final accuracy report (default: "
                     "the economy's: 20,000 for nk, 500 for rank_zlb, 40 for "
                     "rank_zlb_inertia, 20 for hank_zlb, 20 for hank_zlb_collapse).",
                     lower_bound=5)
flags.DEFINE_string("out", "runs/default", "Output directory.")
flags.DEFINE_bool("tensorboard", False, "Also write TensorBoard logs to <out>/tensorboard.")
flags.DEFINE_enum("strategy", "default", list(train_options.STRATEGIES),
                  "default: one device; mirrored: all local GPUs, or the --cpu_devices logical "
                  "CPUs without GPUs; multi_worker: the workers of TF_CONFIG.")
flags.DEFINE_integer("cpu_devices", 1, "Logical devices to split the CPU into (for "
                     "--strategy=mirrored without GPUs).", lower_bound=1)
flags.DEFINE_integer("worker_timeout", 300, "Seconds a multi-worker collective waits for the "
                     "other workers before the run fails.", lower_bound=1)
flags.DEFINE_bool("restart", False, "Discard the checkpoint of an interrupted run in --out and "
                  "start over (by default the same command resumes it).")
flags.register_multi_flags_validator(
    ["cpu_devices", "strategy"], lambda f: f["cpu_devices"] == 1 or f["strategy"] == "mirrored",
    "--cpu_devices > 1 is for --strategy=mirrored")

_STRATEGY = []  # set by start_strategy, which cli.run calls before TF initialises its devices


def start_strategy():
  """Splits the CPU and creates the strategy: both must precede TF's device initialisation."""
  from nk_keras import distribute
  distribute.split_cpu(FLAGS.cpu_devices)
  if FLAGS.strategy != "multi_worker":
    _STRATEGY.append(distribute.create(FLAGS.strategy))
    return
  # Creating it waits in C++ until every worker of TF_CONFIG has started.
  with cli.deadline(FLAGS.worker_timeout, f"not every worker of TF_CONFIG answered within "
                    f"--worker_timeout={FLAGS.worker_timeout} s"):
    _STRATEGY.append(distribute.create(FLAGS.strategy, timeout_s=FLAGS.worker_timeout))


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nk_keras import training   # imports TF: after the flags, which need none
  command = " ".join([os.path.basename(sys.executable), "-m", "apps.train"] + sys.argv[1:])
  training.train_and_export(
      training.options_from_flags(), cli.writable_dir(FLAGS.out),
      strategy=_STRATEGY[0], strategy_name=FLAGS.strategy, log_every=FLAGS.log_every,
      eval_theta=FLAGS.eval_theta, tensorboard=FLAGS.tensorboard, restart=FLAGS.restart,
      command=command)


def run():
  """The console script `nk-train`."""
  cli.run(main, configure_devices=start_strategy)


if __name__ == "__main__":
  run()
