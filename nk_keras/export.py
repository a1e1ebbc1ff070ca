"""SavedModel export of a policy, and loading one back without the training code.

Contract (`serving_default`): one float32 `[None]` input per name in
`state_names + param_names` (NK: zeta, beta, sigma, eta, phi, phi_pi, phi_y, rho_a, sigma_a;
rank_zlb: zeta, theta_pi, theta_y, phi, rho_zeta, sigma_zeta), a dict of float32 `[None]`
outputs named `economy.output_names` (NK: X, Pi in log deviations; rank_zlb: N, Pi, R in
levels). An economy with a set of agents takes each agent state as one `[None, n_agents]`
input (`Economy.served_inputs`; hank_zlb: b, e) and returns its agents' outputs so (c, b_next). The graph stacks the state inputs into the library's `[n, n_state]` and the parameters
into `[n, n_params]`; the signature itself is one flat vector per name, as it always was. A second signature, `in_box`, returns `{"in_box": bool [None]}`: whether each theta
lies in the training box and, where the economy knows one, the region where an equilibrium
exists (the policy extrapolates silently outside them). `assets/metadata.json` describes the run
that made the policy.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import tensorflow as tf

from nk_keras import files
from nk_keras.errors import ModelError, UserError

METADATA = os.path.join("assets", "metadata.json")
RUN = "run.json"   # the train app's record of a run: options, command, commit, versions, time


class ServedPolicy(tf.Module):
  """The exported graph: normalisation, network and output scaling in one function."""

  def __init__(self, policy):
    super().__init__()
    economy = policy.economy
    self.net = policy.net
    self._policy = policy
    self._economy = economy
    served = economy.served_inputs() + [(name, ()) for name in economy.param_names]
    self._n_state = len(served) - economy.n_params
    self._names = tuple(name for name, _ in served)
    self._outputs = tuple(economy.output_names)
    self.box_low = tf.constant(economy.box_low, tf.float32)
    self.box_high = tf.constant(economy.box_high, tf.float32)
    spec = [tf.TensorSpec([None, *shape], tf.float32, name=n) for n, shape in served]
    self.serve = tf.function(self._serve, input_signature=spec)
    self.in_box = tf.function(self._in_box, input_signature=spec)

  def _split(self, inputs):
    """The signature's inputs -> state `[n, n_state]`, theta `[n, n_params]`."""
    k = self._n_state
    return self._economy.join_served(inputs[:k]), tf.stack(inputs[k:], axis=1)

  def _serve(self, *inputs):
    state, theta = self._split(inputs)
    out = self._policy(state, theta)                                 # [n, n_policies]
    return self._economy.outputs(state, theta, out)

  def _in_box(self, *inputs):
    state, theta = self._split(inputs)
    inside = tf.reduce_all((theta >= self.box_low) & (theta <= self.box_high), axis=1)
    finite = tf.reduce_all(tf.math.is_finite(state), axis=1)
    return {"in_box": inside & self._economy.in_domain(theta) & finite}


def versions():
  import keras
  import tensorflow_probability as tfp
  return {"python": sys.version.split()[0], "tensorflow": tf.__version__,
          "keras": keras.__version__, "tensorflow_probability": tfp.__version__,
          "numpy": np.__version__}


def git_commit():
  try:
    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                            text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, check=True).stdout.strip()
    return commit + ("+dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def export(policy, path, metadata, history=None):
  """Writes the SavedModel to `path` with `metadata` (plus box and versions) as its asset, and
  the training history CSV `history` beside it as `assets/history.csv` if given."""
  if not all(np.isfinite(w).all() for w in policy.net.get_weights()):
    raise UserError("the policy has non-finite weights; refusing to export it")
  module = ServedPolicy(policy)
  tf.saved_model.save(module, path,
                      signatures={"serving_default": module.serve, "in_box": module.in_box})
  economy = policy.economy
  metadata = dict(metadata)
  metadata.setdefault("economy", economy.name)
  metadata.update(economy.settings())
  metadata.setdefault("normalization", policy.normalization)
  metadata["box"] = {n: [float(lo), float(hi)] for n, lo, hi in
                     zip(economy.param_names, economy.box_low, economy.box_high)}
  metadata["signature"] = {"inputs": list(module._names), "outputs": list(module._outputs)}
  metadata.setdefault("versions", versions())
  metadata.setdefault("git_commit", git_commit())
  os.makedirs(os.path.join(path, "assets"), exist_ok=True)
  with open(os.path.join(path, METADATA), "w") as f:
    json.dump(metadata, f, indent=2)
  if history and os.path.isfile(history):
    shutil.copyfile(history, os.path.join(path, "assets", "history.csv"))
  return path


def export_run(policy, run_dir, path, n_theta=None, progress=False):
  """Exports `policy`, trained by the train app into `run_dir`, to `path`: the metadata is the
  run's `run.json` plus an accuracy summary measured now on `n_theta` draws of the box (default:
  the economy's), and
  the run's `history.csv` travels along. Returns the accuracy report."""
  from nk_keras import accuracy
  run_file = os.path.join(run_dir, RUN)
  try:
    with open(run_file) as f:
      metadata = json.load(f)
  except OSError:
    raise ModelError(f"{run_dir!r} has no {RUN}: not a finished run of apps.train") from None
  except ValueError:
    raise ModelError(f"{run_file!r} is not valid JSON") from None
  report = accuracy.evaluate(policy.economy, policy, n_theta=n_theta, progress=progress)
  metadata["evaluation"] = accuracy.summary(report)
  export(policy, path, metadata, history=os.path.join(run_dir, "history.csv"))
  return report


def export_run_again(run, out=None, n_theta=None, overwrite=False, progress=False):
  """Writes the export of a finished train-app run `run` anew to `out` (default
  `<run>/saved_model`), an existing SavedModel there replaced only with `overwrite` and only
  once the new one is complete. Returns (accuracy report, out)."""
  from nk_keras.network import ExtendedPolicy
  files.finished_run(run)
  out = out or os.path.join(run, "saved_model")
  try:
    policy = ExtendedPolicy.load(run)
  except Exception as e:  # Keras raises many types for a corrupt file; all mean the same here
    raise ModelError(f"cannot load the policy in {run!r}: {str(e).splitlines()[0]}")
  if os.path.isdir(out) and os.listdir(out):
    # Only ever replace a SavedModel, so a mistyped --out cannot take other files with it.
    if not os.path.isfile(os.path.join(out, "saved_model.pb")):
      raise UserError(f"{out!r} exists and is not a SavedModel; choose another --out")
    if not overwrite:
      raise UserError(f"{out!r} holds a SavedModel already; pass --overwrite to replace it")
  elif os.path.exists(out) and not os.path.isdir(out):
    raise UserError(f"{out!r} is a file; choose another --out")
  # Checked before the evaluation and the write, which would fail only at their end (TF's
  # PermissionDeniedError, reported as a bug).
  files.writable(os.path.dirname(os.path.abspath(out)))
  # The new export is written beside `out` and replaces it only once complete: a run that cannot
  # be exported (no run.json, a failed evaluation) leaves the old SavedModel as it was.
  with files.replacing(out) as tmp:
    report = export_run(policy, run, tmp, n_theta=n_theta, progress=progress)
  return report, out


def record_evaluation(path, evaluation, command):
  """Makes `evaluation` (an `accuracy.summary`) the SavedModel `path`'s own, in its metadata,
  with the command, commit and versions that measured it (`measured_by`). The file is replaced
  whole, so an interrupted write leaves the old one."""
  name = os.path.join(path, METADATA)
  with open(name) as f:
    metadata = json.load(f)
  metadata["evaluation"] = {**evaluation, "measured_by": {
      "command": command, "git_commit": git_commit(), "versions": versions()}}
  with files.replacing(name) as tmp, open(tmp, "w") as f:
    json.dump(metadata, f, indent=2)


class LoadedPolicy:
  """A served policy as `policy(state [n, n_state], theta [n, n_params]) -> [n, n_policies]`."""

  def __init__(self, path):
    files.saved_model(path)
    try:
      loaded = tf.saved_model.load(path)
    except Exception as e:  # TF raises many types for a corrupt file; all mean the same here
      raise ModelError(f"cannot load the SavedModel at {path!r}: {str(e).splitlines()[0]}")
    if "serving_default" not in loaded.signatures:
      raise ModelError(f"{path!r} has no serving_default signature")
    if "in_box" not in loaded.signatures:
      raise ModelError(f"{path!r} is not a policy export of this project (no in_box signature)")
    self.loaded = loaded
    self.fn = loaded.signatures["serving_default"]
    self.in_box_fn = loaded.signatures["in_box"]
    self.input_names = list(self.fn.structured_input_signature[1])
    self.output_names = list(self.fn.structured_outputs)
    try:
      with open(os.path.join(path, METADATA)) as f:
        self.metadata = json.load(f)
    except OSError:
      self.metadata = {}
    except ValueError as e:
      # A damaged export of the contract, not some other SavedModel: say which file is bad.
      raise ModelError(f"{os.path.join(path, METADATA)!r} is corrupt (not valid JSON: {e}); "
                       f"export the policy again") from None
    if not isinstance(self.metadata, dict):
      raise ModelError(f"{os.path.join(path, METADATA)!r} is corrupt (not a JSON object); "
                       f"export the policy again")
    from nk_keras import economies
    names = self.metadata.get("signature", {}).get("inputs")
    name = self.metadata.get("economy", "nk")
    economy = (economies.get(name, agents=self.metadata.get("agents", 0))
               if name in economies.ECONOMIES else None)
    expected = None if economy is None else (
        [name for name, _ in economy.served_inputs()] + list(economy.param_names),
        list(economy.output_names))
    if (names is None or sorted(names) != sorted(self.input_names) or expected is None
        or (names, self.metadata["signature"].get("outputs")) != expected):
      raise ModelError(f"{path!r} is not a policy export of this project "
                       f"(signature inputs {self.input_names})")
    self.economy = economy
    self.input_names = names

  def __call__(self, state, theta):
    """Policies `[n, n_policies]` in the economy's units (what `ExtendedPolicy` returns)."""
    return self.economy.policies_from_outputs(self.fn(**feeds(self.economy, state, theta)))


def feeds(economy, state, theta):
  """A served policy's inputs (name -> float32 tensor) for `state` `[n, n_state]` and `theta`
  `[n, n_params]` of `economy`."""
  state = tf.convert_to_tensor(state, tf.float32)
  theta = tf.convert_to_tensor(theta, tf.float32)
  aggregate, agents = economy.split_agents(state, economy.n_aggregate_states)
  served = economy.served_inputs()
  k = economy.n_aggregate_states
  inputs = {name: aggregate[:, i] for i, (name, _) in enumerate(served[:k])}
  if agents is not None:
    inputs.update({name: agents[..., j] for j, (name, _) in enumerate(served[k:])})
  inputs.update({name: theta[:, i] for i, name in enumerate(economy.param_names)})
  return inputs
