"""One training run: options -> regime, optimiser, schedule, `fit` with callbacks; the train app's
whole run (`train_and_export`)."""

import dataclasses
import json
import math
import os
import shutil
import time

import keras
import tensorflow as tf

from nk_keras import callbacks as nk_callbacks
from nk_keras import distribute, economies, regimes, sizes
from nk_keras.errors import UserError
from nk_keras.network import ExtendedPolicy
from nk_keras.soap import SOAP
# The options live in a module without TF (the train app's flags are made before importing it).
from nk_keras.train_options import CHECKS, TrainOptions, with_economy_defaults  # noqa: F401


def options_from_flags(flag_values=None):
  """The train app's options: its parsed flags, the economy's defaults where none was given."""
  from nk_keras import cli
  return with_economy_defaults(cli.options_from_flags(TrainOptions, flag_values),
                               given=cli.flags_given(TrainOptions, flag_values))


def parse_weights(text):
  """`"Euler=2,NKPC=1"` -> {"Euler": 2.0, "NKPC": 1.0}; names are checked by the regime."""
  weights = {}
  for item in filter(None, (s.strip() for s in text.split(","))):
    name, sep, value = (s.strip() for s in item.partition("="))
    try:
      weights[name] = float(value)
    except ValueError:
      sep = ""
    if not sep or not name or not weights[name] >= 0:
      raise UserError(f"loss weights: expected residual=non-negative number, got {item!r}")
  return weights


def compiled_calls(options, replicas):
  """`(jit_compile, steps_per_execution)` that Keras 3.15 can run with `replicas` replicas.

  Several replicas get neither: Keras compiles the function that calls `strategy.run`, so XLA
  would have to hold every replica's variables in one cluster on one device ("Trying to access
  resource ... located in device CPU:1 from device CPU:0"), and its multi-step loop fails under
  a multi-device strategy (keras-team/keras#19246, "You must feed a value for placeholder
  tensor"). Several workers of one device each get the same fallback, untried with XLA there.
  One replica, with or without a strategy, keeps both.
  """
  if replicas == 1:
    return options.jit_compile, options.steps_per_execution
  return False, 1


def build_regime(options, strategy=None):
  """Policy and compiled regime for `options`, under `strategy` (`tf.distribute`; none by
  default). `options.batch` is the global batch, split evenly across the replicas."""
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    return _build_regime(options, strategy.num_replicas_in_sync)


def _build_regime(options, replicas):
  if not options.clipnorm > 0:
    # Keras takes a clip of 0 (or None) for "no clipping": refused rather than silently unclipped.
    raise UserError(f"clipnorm must be positive, got {options.clipnorm} (Keras reads 0 as no "
                    f"clip at all)")
  if options.batch % replicas:
    raise UserError(f"--batch ({options.batch}) must be a multiple of the {replicas} replicas: "
                    f"it is the global batch, split evenly across them")
  economy = economies.get(options.economy, agents=options.agents)
  if options.phase_in:
    if economy.constraint is None:
      raise UserError(f"--phase_in: economy {economy.name!r} has no occasionally binding "
                      f"constraint to phase in")
    # A variable made here, under the strategy, that the compiled step reads (`PhaseIn`).
    economy.relaxation = tf.Variable(1.0, trainable=False, name="relaxation")
  policy = ExtendedPolicy.create(economy, options.normalization, seed=options.seed,
                                 width=options.width, depth=options.depth,
                                 activation=options.activation)
  if options.init:
    warm_start(policy, options.init)
  regime_options = dict(batch=options.batch // replicas, mc=options.mc, seed=options.seed,
                        loss_weights=parse_weights(options.loss_weights),
                        weighting=options.weighting, stratified=options.stratified,
                        grid=options.grid,
                        unbiased=options.unbiased, state_scale=options.state_scale,
                        level_states=options.level_states, level_weight=options.level_weight)
  if options.regime == "cached":
    regime_options["pool"] = options.pool
  if options.regime == "distill":
    regime_options["thetas"] = options.distill_thetas
  if options.regime in ("internal", "stepping"):
    regime_options["internal"] = options.internal
  if options.regime == "stepping":
    regime_options.update(num_steps=options.num_steps, redraw_every=options.redraw_every)
  model = regimes.build(options.regime, policy, **regime_options)
  steps = options.gradient_steps
  schedule = keras.optimizers.schedules.CosineDecay(
      options.lr, decay_steps=steps, alpha=options.eta_min / options.lr)
  # Each replica gives the optimiser 1/replicas of the global gradient: see
  # `Regime.global_gradient_share`.
  common = dict(learning_rate=schedule, weight_decay=options.weight_decay,
                global_clipnorm=options.clipnorm / replicas)
  if options.optimizer == "soap":
    optimizer = SOAP(precondition_every=options.precondition_every, **common)
  else:
    optimizer = keras.optimizers.AdamW(**common)
  jit_compile, steps_per_execution = compiled_calls(options, replicas)
  model.compile(optimizer=optimizer, jit_compile=jit_compile,
                steps_per_execution=steps_per_execution)
  model.built = True  # every variable exists already; BackupAndRestore insists on this flag
  return model


def warm_start(policy, run_dir):
  """Sets `policy`'s weights to those of the policy saved in `run_dir` (same economy,
  normalization and network shape): a run that continues another with a new schedule or loss."""
  try:
    start = ExtendedPolicy.load(run_dir)
  except (OSError, ValueError) as e:
    raise UserError(f"--init={run_dir!r}: no saved policy there ({e})") from None
  def shape(p):
    return [tuple(w.shape) for w in p.net.get_weights()]
  # The first difference only: the economy decides the normalisation's meaning and the shape.
  for what, theirs, ours in (("economy", start.economy.name, policy.economy.name),
                             ("normalization", start.normalization, policy.normalization),
                             ("network shape (--width, --depth)", shape(start), shape(policy))):
    if theirs != ours:
      if what.startswith("network"):
        theirs, ours = _layers(theirs), _layers(ours)
      raise UserError(f"--init={run_dir!r} holds a policy of another {what}: {theirs} there, "
                      f"{ours} in this run")
  policy.net.set_weights(start.net.get_weights())


def epochs_of(total, steps_per_epoch=None, steps_per_execution=100):
  """How `fit` cuts `total` gradient steps: `(steps per epoch, steps per compiled call, whole
  epochs, steps of a last shorter epoch (0: none))`. The run takes exactly `total` steps, and
  every whole epoch ends on a whole compiled call."""
  spe = min(steps_per_epoch or 1000, total)
  per_call = math.gcd(min(steps_per_execution, spe), spe)
  return spe, per_call, total // spe, total % spe


def _layers(shapes):
  """Weight shapes as the hidden widths they imply (`64 x 5`), for messages."""
  widths = [s[1] for s in shapes if len(s) == 2][:-1]
  return (f"{widths[0]} x {len(widths)}" if widths and len(set(widths)) == 1
          else "widths " + ", ".join(map(str, widths)))


def fit(model, options, steps_per_epoch=None, callbacks=(), verbose=True):
  """Runs the whole schedule, exactly `options.gradient_steps` gradient steps; an epoch is
  `steps_per_epoch` of them (one history row), the last one shorter where that does not divide
  the run. Returns the `History` of every epoch run."""
  total = options.gradient_steps
  spe, per_call, whole, tail = epochs_of(
      total, steps_per_epoch, compiled_calls(options, model.replicas)[1])
  if model.steps_per_execution != per_call:
    # Keras bakes steps_per_execution into its cached train function: rebuild it.
    model.steps_per_execution = per_call
    model.make_train_function(force=True)

  def ticks(n=None):
    # The points come from the regime; the dataset only paces `fit`. Each replica gets its own
    # (there is no batch to split); without a strategy it is the plain dataset. A compiled call
    # stops where the dataset ends: `n` ticks end a shorter epoch inside a call, with no
    # train function compiled for it.
    return model.distribute_strategy.distribute_datasets_from_function(
        lambda _: tf.data.Dataset.from_tensors(0.0).repeat(n))

  cbs = [nk_callbacks.WallTime()] + list(callbacks)
  if verbose:
    cbs.append(nk_callbacks.Progress(total))
  # Keras fits epochs of one length only: a shorter last epoch is a second `fit`, its epoch
  # numbered after the others (so a resumed run, which starts at its step's epoch, finds it).
  history = None
  for epochs, steps in ((whole, spe), (whole + 1, tail)):
    if not steps:
      continue
    part = model.fit(ticks(None if steps == spe else steps), epochs=epochs,
                     initial_epoch=0 if steps == spe else whole, steps_per_epoch=steps,
                     callbacks=cbs, verbose=0, shuffle=False)
    if history is None:
      history = part
    else:
      for key, values in part.history.items():
        history.history.setdefault(key, []).extend(values)
  return history


class Checkpoint(keras.callbacks.BackupAndRestore):
  """`BackupAndRestore` that resumes by gradient step: the restored optimiser step, over the
  epoch length, is the epoch to resume at (Keras' saved count of epochs means other steps under
  another epoch length). Keeps its checkpoint at the end: `run` removes it once the policy is
  saved, so a kill in between resumes to a finished run instead of starting over."""

  def __init__(self, backup_dir, steps_per_epoch):
    super().__init__(backup_dir, double_checkpoint=True, delete_checkpoint=False)
    self.steps_per_epoch = steps_per_epoch

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    step = int(self.model.optimizer.iterations.numpy())
    self.model._initial_epoch = -(-step // self.steps_per_epoch)


class DivergenceError(UserError, RuntimeError):
  """The loss blew up: training stopped, the last good checkpoint kept. A user error: the
  options (learning rate, clip) do not suit the problem."""


class OptionsMismatch(UserError):
  """`out` holds a checkpoint of a run with other options."""


def run(options, out, log_every=1000, tensorboard=False, verbose=True, restart=False,
        callbacks=(), strategy=None, finish=None):
  """Trains per `options` into `out`, resuming from `<out>/backup` if a run was interrupted.

  Writes `<out>/history.csv` as it goes and the policy (`policy.keras`, `policy.json`) at the
  end, then calls `finish()` (the chief) before removing the checkpoint. Says on its first line
  whether it starts or resumes. Returns (model, history).

  Under a multi-worker `strategy` only the chief writes these; every other worker keeps its
  own checkpoints in `<out>/backup-<worker>` (so all workers resume from the same step, even
  on machines that share no disk) and removes them at the end.
  """
  sizes.training(options, economies.get(options.economy, agents=options.agents))
  strategy = strategy or tf.distribute.get_strategy()
  writer = distribute.is_writer(strategy)
  backup = os.path.join(out, "backup" if writer else f"backup-{distribute.worker_id(strategy)}")
  history_path = os.path.join(out, "history.csv")
  options_path = os.path.join(backup, "options.json")
  if restart:
    shutil.rmtree(backup, ignore_errors=True)
  metadata = os.path.join(backup, "training_metadata.json")
  resumed = os.path.exists(metadata)
  # The epoch length is part of the run: the divergence checks and the history rows fall at its
  # ends, so a resume under another one would not reach the uninterrupted run's end.
  settings = dict(dataclasses.asdict(options), log_every=log_every)
  if resumed:
    with open(options_path) as f:
      before = json.load(f)
    if before != settings:
      changed = sorted(k for k in set(before) | set(settings)
                       if before.get(k) != settings.get(k))
      raise OptionsMismatch(f"{out!r} holds an interrupted run with other options "
                            f"({', '.join(f'--{k}' for k in changed)}); rerun it unchanged or "
                            f"pass --restart")
    if writer:
      print(f"resuming the interrupted run in {out} ({options.regime}, "
            f"{options.gradient_steps} gradient steps in all)")
  else:
    if writer:
      print(f"training {options.regime}: {options.gradient_steps} gradient steps -> {out}")
    if writer and os.path.exists(history_path):
      os.remove(history_path)
    os.makedirs(backup, exist_ok=True)
    with open(options_path, "w") as f:
      json.dump(settings, f, indent=2)
  model = build_regime(options, strategy)
  if writer and (model.jit_compile, model.steps_per_execution) != (
      options.jit_compile, options.steps_per_execution):
    print(f"note: {model.replicas} replicas run without XLA and one gradient step per compiled "
          f"call (Keras cannot do more under tf.distribute; see training.compiled_calls)")
  # Keras restores weights, optimiser state (hence the schedule position and the step that keys
  # every random draw) and the regimes' persistent points; the previous checkpoint is kept so a
  # kill during a write falls back to it.
  cbs = [Checkpoint(backup, epochs_of(options.gradient_steps, log_every)[0]),
         nk_callbacks.StopOnDivergence()]
  if writer:
    cbs.append(nk_callbacks.HistoryCSV(history_path))
  if tensorboard and writer:
    cbs.append(keras.callbacks.TensorBoard(os.path.join(out, "tensorboard")))
  economy = model.policy.economy
  if options.phase_in:
    cbs.append(nk_callbacks.PhaseIn(economy.relaxation,
                                    max(1, round(options.phase_in * options.gradient_steps))))
  cbs += list(callbacks)
  try:
    history = fit(model, options, steps_per_epoch=log_every, callbacks=cbs,
                  verbose=verbose and writer)
  except nk_callbacks.Diverged as e:
    raise DivergenceError(
        f"training diverged by gradient step {e.step}: {e.what} (lr now {e.lr:.3g}); the "
        f"likely cause is too high a learning rate (--lr) "
        f"or too loose a gradient clip (--clipnorm). "
        + (f"The last good checkpoint is kept in {backup}." if os.path.exists(
            os.path.join(backup, "training_metadata.json")) else
           "No checkpoint had been written yet.")) from None
  finally:
    economy.relaxation = 0.0   # what follows (export, evaluation) is the model itself
  if writer:
    model.policy.save(out)
    if finish is not None:
      finish()
  shutil.rmtree(backup, ignore_errors=True)
  return model, history


def last_loss(history_path):
  """The training loss of the last row of a run's history (a resumed run may have trained
  nothing in this process)."""
  import csv
  with open(history_path, newline="") as f:
    rows = list(csv.DictReader(f))
  return float(rows[-1]["loss"]) if rows else math.nan


def train_and_export(options, out, strategy=None, strategy_name="default", log_every=1000,
                     eval_theta=None, tensorboard=False, restart=False, command=""):
  """The train app's run: `run` (resuming an interrupted one), then, on the chief, `run.json`
  (options, `command`, commit, versions, wall time), the SavedModel export at
  `<out>/saved_model` with its accuracy summary on `eval_theta` draws, and `evaluation.*`.
  The chief holds `out` locked throughout (`files.locked`).

  Run again on its finished `out`, it says so and does nothing (returns None); on a run
  trained but killed in its export, it finishes the export; with other options, a
  `OptionsMismatch` (`restart` trains anew in every case). Prints the accuracy tables; returns
  the accuracy report (None on another worker)."""
  from nk_keras import files
  options.check()
  economy = economies.get(options.economy, agents=options.agents)
  sizes.training(options, economy)
  sizes.evaluate(eval_theta or economy.eval_theta, economy, flag="eval_theta")
  strategy = strategy or tf.distribute.get_strategy()
  if not distribute.is_writer(strategy):
    return _train_and_export(options, out, strategy, strategy_name, log_every, eval_theta,
                             tensorboard, restart, command)
  with files.locked(out):
    files.remove_stale(out)
    stage = "train" if restart else finished_stage(options, out)
    if stage == "done":
      print(f"{out} holds this run, finished (trained, exported, evaluated): nothing to do; "
            f"--restart trains it again")
      return None
    if stage == "export":
      print(f"{out} holds this run trained but not exported (interrupted): exporting it")
      return _export(ExtendedPolicy.load(out), out, eval_theta, wall=None)
    return _train_and_export(options, out, strategy, strategy_name, log_every, eval_theta,
                             tensorboard, restart, command)


def finished_stage(options, out):
  """How far a previous run of `options` into `out` got: "train" (none, or interrupted in
  training: `run` resumes it), "export" (trained, its export unfinished) or "done". A
  `OptionsMismatch` if `out` holds another finished run."""
  from nk_keras import export
  if os.path.exists(os.path.join(out, "backup", "training_metadata.json")):
    return "train"
  record = os.path.join(out, export.RUN)
  if not os.path.exists(record):
    if os.path.exists(os.path.join(out, "policy.keras")):
      raise OptionsMismatch(f"{out!r} holds a trained policy but no {export.RUN} (not a run of "
                            f"the train app); choose another --out or pass --restart")
    return "train"
  try:
    with open(record) as f:
      before = json.load(f)["options"]
  except (OSError, ValueError, KeyError, TypeError):
    raise OptionsMismatch(f"{record!r} is not a train-app record (unreadable); choose another "
                          f"--out or pass --restart") from None
  now = dataclasses.asdict(options)
  if before != now:
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    raise OptionsMismatch(f"{out!r} holds a finished run with other options "
                          f"({', '.join(f'--{k}' for k in changed)}); choose another --out or "
                          f"pass --restart to replace it")
  exported = all(os.path.exists(os.path.join(out, p)) for p in (
      os.path.join("saved_model", "saved_model.pb"), "evaluation.json", "evaluation.md"))
  return "done" if exported else "export"


def _train_and_export(options, out, strategy, strategy_name, log_every, eval_theta, tensorboard,
                      restart, command):
  from nk_keras import export
  commit = export.git_commit()   # the code this process runs, before anyone edits the tree
  start = time.time()

  def record():
    # Written before the checkpoint is removed: a kill after it finds the export to finish.
    run_record = {"regime": options.regime, "options": dataclasses.asdict(options),
                  "strategy": strategy_name, "replicas": strategy.num_replicas_in_sync,
                  "command": command, "wall_time_s": round(time.time() - start, 1),
                  "gradient_steps": options.gradient_steps,
                  "final_loss": last_loss(os.path.join(out, "history.csv")),
                  "git_commit": commit, "versions": export.versions()}
    if options.init and os.path.exists(os.path.join(options.init, export.RUN)):
      with open(os.path.join(options.init, export.RUN)) as f:
        run_record["init_run"] = json.load(f)   # how the starting policy was made: the recipe
    with open(os.path.join(out, export.RUN), "w") as f:
      json.dump(run_record, f, indent=2)

  model, _ = distribute.fail_on_lost_worker(
      run, options, out, log_every=log_every, tensorboard=tensorboard, restart=restart,
      strategy=strategy, finish=record)
  if not distribute.is_writer(strategy):
    print(f"worker {distribute.worker_id(strategy)} done; the chief writes {out}")
    return None
  return _export(model.policy, out, eval_theta, wall=time.time() - start)


def _export(policy, out, eval_theta, wall):
  from nk_keras import accuracy, export, files
  # Complete or absent: a kill mid-export leaves no half SavedModel for a rerun to trust.
  with files.replacing(os.path.join(out, "saved_model")) as tmp:
    report = export.export_run(policy, out, tmp, n_theta=eval_theta, progress=True)
  accuracy.write(report, out)
  print(accuracy.markdown(report))
  print((f"wall time {wall:.0f} s; " if wall is not None else "")
        + f"SavedModel at {os.path.join(out, 'saved_model')}")
  return report
