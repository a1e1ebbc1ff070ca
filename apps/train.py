"""Train an extended policy network, export it, and report its accuracy.

  python -m apps.train --regime=stepping --iterations=2000 --out=runs/stepping

A run that is interrupted (Ctrl-C, kill) resumes from its last checkpoint when the same command
is run again; --restart starts over. Writes to --out: policy.keras + policy.json (the Keras
model), run.json (options, command, commit, wall time), history.csv, saved_model/ (the
SavedModel contract of README; apps.export rewrites it from the other files), evaluation.json
and evaluation.md.

  python -m apps.train --strategy=mirrored --cpu_devices=2 --batch=1000 --out=runs/mirrored

trains on several devices (README, "Training on several devices"); with --strategy=multi_worker
every worker runs the same command with its own TF_CONFIG, and only the chief writes --out.
"""

import os
import sys

if not __package__:  # run as a file, `python apps/<app>.py`: the repository first on the path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dataclasses
import json
import time

from absl import flags

from nk_keras import cli
from nk_keras.distribute import STRATEGIES
from nk_keras.economies import ECONOMIES
from nk_keras.network import NORMALIZATIONS
from nk_keras.regimes import REGIMES, WEIGHTINGS
from nk_keras.training import TrainOptions

FLAGS = flags.FLAGS
D = TrainOptions()

flags.DEFINE_enum("economy", D.economy, list(ECONOMIES), "The model to solve.")
flags.DEFINE_enum("regime", D.regime, list(REGIMES),
                  "Where each gradient step's points come from.")
flags.DEFINE_integer("iterations", D.iterations, "Draws of points (fresh/cached: gradient steps).",
                     lower_bound=1)
flags.DEFINE_integer("internal", D.internal, "Gradient steps per iteration (internal, stepping).",
                     lower_bound=1)
flags.DEFINE_integer("num_steps", D.num_steps, "AR(1) steps of the state between iterations "
                     "(stepping).", lower_bound=0)
flags.DEFINE_integer("redraw_every", D.redraw_every, "Iterations between parameter redraws "
                     "(stepping).", lower_bound=1)
flags.DEFINE_integer("pool", D.pool, "Size of the cached pool of points (cached).", lower_bound=1)
flags.DEFINE_integer("batch", D.batch, "Points per gradient step, over all replicas (each takes "
                     "--batch / replicas).", lower_bound=1)
flags.DEFINE_integer("mc", D.mc, "Antithetic Monte Carlo draws per expectation (even).",
                     lower_bound=2)
flags.DEFINE_bool("stratified", D.stratified, "Draw the Monte Carlo shocks in strata of the "
                  "normal law (less noise in expectations of nonlinear residuals).")
flags.DEFINE_bool("unbiased", D.unbiased, "Loss from two independent sets of --mc shocks (the "
                  "product of their residuals): no bias from the noise of expectations.")
flags.DEFINE_float("state_scale", D.state_scale, "States drawn with this many times their "
                   "ergodic std (fresh, cached, internal).", lower_bound=0.1)
flags.DEFINE_float("lr", D.lr, "Initial learning rate (cosine decay to --eta_min).",
                   lower_bound=0.0)
flags.DEFINE_float("eta_min", D.eta_min, "Final learning rate.", lower_bound=0.0)
flags.DEFINE_float("weight_decay", D.weight_decay, "AdamW weight decay.", lower_bound=0.0)
flags.DEFINE_float("clipnorm", D.clipnorm, "Global gradient-norm clip (positive; there is no "
                   "unclipped training).", lower_bound=0.0)
flags.DEFINE_string("loss_weights", D.loss_weights, "Weights of the residuals in the loss, "
                    "name=value,... by residual name (nk: Euler, NKPC); 1 for those not named.")
flags.DEFINE_integer("width", D.width, "Units per hidden layer.", lower_bound=1)
flags.DEFINE_integer("depth", D.depth, "Hidden layers.", lower_bound=1)
flags.DEFINE_string("activation", D.activation, "Keras activation of the hidden layers.")
flags.DEFINE_enum("normalization", D.normalization, list(NORMALIZATIONS),
                  "How the state enters and policies leave the network (nk_keras/network.py).")
flags.DEFINE_enum("weighting", D.weighting, list(WEIGHTINGS),
                  "How residuals enter the loss (nk_keras/regimes.py).")
flags.DEFINE_integer("seed", D.seed, "Seed of every random draw and of the initial weights.",
                     lower_bound=0)
flags.DEFINE_integer("steps_per_execution", D.steps_per_execution,
                     "Gradient steps per compiled call.", lower_bound=1)
flags.DEFINE_integer("log_every", 1000, "Gradient steps per history row.", lower_bound=1)
flags.DEFINE_integer("eval_theta", None, "Theta draws for the final accuracy report (default: "
                     "the economy's, 20,000 for nk, 1,000 for rank_zlb).",
                     lower_bound=100)
flags.DEFINE_string("out", "runs/default", "Output directory.")
flags.DEFINE_bool("tensorboard", False, "Also write TensorBoard logs to <out>/tensorboard.")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES),
                  "default: one device; mirrored: all local GPUs, or the --cpu_devices logical "
                  "CPUs without GPUs; multi_worker: the workers of TF_CONFIG.")
flags.DEFINE_integer("cpu_devices", 1, "Logical devices to split the CPU into (for "
                     "--strategy=mirrored without GPUs).", lower_bound=1)
flags.DEFINE_integer("worker_timeout", 300, "Seconds a multi-worker collective waits for the "
                     "other workers before the run fails.", lower_bound=1)
flags.DEFINE_bool("restart", False, "Discard the checkpoint of an interrupted run in --out and "
                  "start over (by default the same command resumes it).")

flags.register_validator("mc", lambda v: v % 2 == 0, "--mc must be even (antithetic pairs)")
flags.register_validator("clipnorm", lambda v: v > 0, "--clipnorm must be positive: Keras reads 0 "
                         "as no clip at all, and an unclipped step is how runs diverge")
flags.register_multi_flags_validator(
    ["lr", "eta_min"], lambda f: 0 < f["eta_min"] <= f["lr"],
    "--eta_min must be positive and no larger than --lr")
flags.register_multi_flags_validator(
    ["pool", "batch"], lambda f: f["pool"] >= f["batch"], "--pool must be at least --batch")
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
  from nk_keras import accuracy, distribute, export, training
  strategy = _STRATEGY[0]
  out = cli.writable_dir(FLAGS.out)
  options = training.TrainOptions(**{
      f.name: FLAGS[f.name].value for f in dataclasses.fields(training.TrainOptions)
      if f.name in FLAGS})
  commit = export.git_commit()   # the code this process runs, before anyone edits the tree
  start = time.time()
  model, history = distribute.fail_on_lost_worker(
      training.run, options, out, log_every=FLAGS.log_every, tensorboard=FLAGS.tensorboard,
      restart=FLAGS.restart, strategy=strategy)
  wall = time.time() - start
  if not distribute.is_writer(strategy):
    print(f"worker {distribute.worker_id(strategy)} done; the chief writes {out}")
    return
  run = {"regime": options.regime, "options": dataclasses.asdict(options),
         "strategy": FLAGS.strategy, "replicas": strategy.num_replicas_in_sync,
         "command": " ".join([os.path.basename(sys.executable), "-m", "apps.train"]
                             + sys.argv[1:]),
         "wall_time_s": round(wall, 1), "gradient_steps": options.gradient_steps,
         "final_loss": float(history.history["loss"][-1]), "git_commit": commit,
         "versions": export.versions()}
  with open(os.path.join(out, export.RUN), "w") as f:
    json.dump(run, f, indent=2)
  report = export.export_run(model.policy, out, os.path.join(out, "saved_model"),
                             n_theta=FLAGS.eval_theta, progress=True)
  accuracy.write(report, out)
  print(accuracy.markdown(report))
  print(f"wall time {wall:.0f} s; SavedModel at {os.path.join(out, 'saved_model')}")


def run():
  """The console script `nk-train`."""
  cli.run(main, configure_devices=start_strategy)


if __name__ == "__main__":
  run()
