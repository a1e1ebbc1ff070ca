"""Simulations of an economy under a policy: state paths, impulse responses and moments.

`policy(state [n, n_state], theta [n, n_params]) -> [n, n_policies]` may be an in-memory
`ExtendedPolicy`, a `LoadedPolicy` or the closed form itself. `theta` here is one parameter
vector `[n_params]`; results are NumPy arrays in the model's units (log deviations from the
steady state), as dicts of named columns ready for CSV/JSON.

States are `[..., n_state]` arrays (paths `[periods, chains, n_state]`), one column per state
in tables. Impulse responses are to one innovation (`shock`, by default the first of
`shock_names`); population moments (`analytical_moments`) are for one state.

Every result sits next to the economy's reference at the same states (`Solution`): the closed
form where there is one (columns `<policy>_exact`, NK), else its reference solved at that one
theta (time iteration for rank_zlb; columns `<policy>_reference`). Served outputs beyond the
policies (rank_zlb's rate R) are added as their logs.

The state is simulated first (a cheap loop over periods, vectorised over chains) and the policy
is then called once on every simulated point, so the network never runs inside the time loop.
"""

import csv

import numpy as np
import tensorflow as tf

from nk_keras.errors import UserError

CHUNK = 65_536   # points per policy call: bounds the memory of large evaluations


def batched(policy, size=CHUNK):
  """`policy` called on at most `size` points at a time; same signature, returns a tensor.

  accuracy's residuals call the policy on (1 + mc) * n_theta points (2M by default), whose
  activations take ~0.5 GB per 64-unit layer; chunks keep the peak small, and at 65k points
  per call the per-call overhead is negligible.
  """
  def call(state, theta):
    state = tf.convert_to_tensor(state, tf.float32)
    theta = tf.convert_to_tensor(theta, tf.float32)
    n = state.shape[0]
    if n is None or n <= size:   # unknown inside a traced caller, which bounds its own batches
      return tf.cast(policy(state, theta), tf.float32)
    return tf.concat([tf.cast(policy(state[i:i + size], theta[i:i + size]), tf.float32)
                      for i in range(0, n, size)], axis=0)
  return call


def evaluate(policy, state, theta):
  """Policies `[..., n_pol]` at `state` `[..., n_state]` (any leading shape) for one `theta`
  `[n_params]`."""
  state = np.asarray(state, np.float32)
  flat = state.reshape(-1, state.shape[-1])
  thetas = np.tile(np.asarray(theta, np.float32)[None], (flat.shape[0], 1))
  out = np.asarray(batched(policy)(flat, thetas))
  return out.reshape(state.shape[:-1] + out.shape[-1:])


def closed_form(economy, state, theta):
  """Exact policies `[..., n_pol]` at `state` `[..., n_state]`, or None if the economy has
  none."""
  state = np.asarray(state, np.float32)
  flat = state.reshape(-1, state.shape[-1])
  thetas = np.tile(np.asarray(theta, np.float32)[None], (flat.shape[0], 1))
  exact = economy.closed_form(tf.constant(flat), tf.constant(thetas))
  if exact is None:
    return None
  exact = exact.numpy()
  return exact.reshape(state.shape[:-1] + exact.shape[-1:])


def has_closed_form(economy):
  return economy.has_closed_form()


class NoEquilibrium(UserError):
  """The reference finds no (stable) equilibrium at the theta asked for."""


class Solution:
  """The economy's reference at one `theta` `[n_params]`, as policies at states of any shape.

  With a closed form it is evaluated as before (float32, `closed_form`: "exact"); otherwise
  `economy.reference(theta[None])` is solved once (time iteration: "reference") and
  interpolated. Raises NoEquilibrium where the reference has no solution.
  """

  def __init__(self, economy, theta):
    self.economy = economy
    self.theta = np.asarray(theta, np.float32)
    self.closed = has_closed_form(economy)
    if not (self.closed or economy.has_reference()):
      # No reference: tables, moments and figures show the network alone.
      self.key, self.kind, self.reference = None, "none", None
      return
    self.key = "exact" if self.closed else "reference"
    self.kind = "closed form" if self.closed else "time iteration"
    self.reference = None if self.closed else economy.reference(
        self.theta.astype(np.float64)[None])
    if self.reference is not None and not self.reference.valid[0]:
      where = ", ".join(f"{n}={v:g}" for n, v in zip(economy.param_names, self.theta))
      raise NoEquilibrium(f"the reference ({self.kind}) finds no stable equilibrium at {where}")

  def __call__(self, state):
    """Reference policies `[..., n_pol]` (NumPy) at `state` `[..., n_state]`."""
    if self.closed:
      return closed_form(self.economy, state, self.theta)
    state = np.asarray(state, np.float64)
    out = self.reference.policies(state.reshape(1, -1, state.shape[-1]))[0]
    return out.reshape(state.shape[:-1] + out.shape[-1:])


def with_reference(policy, solution, states, theta):
  """[(kind, policies at `states`)]: the network's ("nn") and the reference's where there is
  one."""
  out = [("nn", evaluate(policy, states, theta))]
  return out + ([(solution.key, solution(states))] if solution.key else [])


def state_column_names(economy):
  """The names `state_columns` gives."""
  return (list(economy.state_names[:economy.n_aggregate_states])
          + [f"{n}_{s}" for n in economy.agent_states for s in ("mean", "p10", "p50", "p90")])


def state_columns(economy, states):
  """Columns of a table for `states` `[..., n_state]`: each aggregate state, and of an agent
  set's states the cross-sectional mean and 10th, 50th and 90th percentiles (`b_mean`, ...)."""
  states = np.asarray(states)
  k = economy.n_aggregate_states
  out = {name: states[..., i] for i, name in enumerate(economy.state_names[:k])}
  if economy.n_agents:
    agents = states[..., k:].reshape(states.shape[:-1] + (economy.n_agents, -1))
    for j, name in enumerate(economy.agent_states):
      out[f"{name}_mean"] = agents[..., j].mean(axis=-1)
      for q in (10, 50, 90):
        out[f"{name}_p{q}"] = np.percentile(agents[..., j], q, axis=-1)
  return out


def extra_outputs(economy, state, theta, policies):
  """Logs of the served outputs that are not policies (rank_zlb: log R), dict name ->
  `[...]` for `policies` `[..., n_pol]` at `state` `[..., n_state]`; empty for NK."""
  extra = [n for n in economy.output_names if n not in economy.policy_names]
  if not extra:
    return {}
  shape = np.shape(state)[:-1]
  flat = np.asarray(policies, np.float64).reshape(-1, len(economy.policy_names))
  thetas = np.tile(np.asarray(theta, np.float64)[None], (flat.shape[0], 1))
  out = economy.outputs(tf.constant(np.reshape(state, (-1, economy.n_state)), tf.float64),
                        tf.constant(thetas), tf.constant(flat))
  # An agent set's outputs (consumption) by the log of their cross-sectional mean.
  return {f"{n}_mean" if n in economy.agent_outputs else n:
          np.log(out[n].numpy().mean(axis=1) if n in economy.agent_outputs else out[n].numpy()
                 ).reshape(shape) for n in extra}


def state_paths(economy, theta, periods, chains=1, seed=0, start="ergodic", stream=0,
                policy=None):
  """`[periods, chains, n_state]` paths of the states; row 0 is the start, then one step of the
  law of motion per row (an endogenous state moves with `policy`'s choices, which it needs).

  `seed` and `stream` make the stateless seeds: the same seed with different streams gives
  independent draws (the app's short path and its moment chains).

  `start`: "ergodic" draws row 0 from the ergodic distribution (the path is then stationary
  from its first period, no burn-in needed; with endogenous states, from the first-order
  perturbation's); "zero" starts at the steady state.
  """
  if start not in ("ergodic", "zero"):
    raise UserError(f"start must be 'ergodic' or 'zero', got {start!r}")
  if economy.endogenous_states and policy is None:
    raise ValueError(f"economy {economy.name!r} has endogenous states: a policy is needed")
  thetas = tf.constant(np.tile(np.asarray(theta, np.float32)[None], (chains, 1)))
  # Separate seed streams for the start and the shocks, so changing one leaves the other alone.
  if start == "ergodic":
    state = economy.draw_state(thetas, tf.constant([seed, 100 * stream + 1], tf.int32))
  else:
    state = steady_state(economy, thetas)
  eps = tf.random.stateless_normal([max(periods - 1, 0), chains, economy.n_shock],
                                   seed=tf.constant([seed, 100 * stream + 2], tf.int32))
  policy = batched(policy) if policy is not None else None
  rows = [state]
  for t in range(periods - 1):   # sequential by nature; each step is vectorised over chains
    state = economy.next_state(policy, state, thetas, eps[t])
    rows.append(state)
  return tf.stack(rows).numpy()


BURN_IN = 50   # periods from the perturbation's ergodic draw to the policy's own ergodic law


def ergodic_states(economy, policy, theta, m, seed=0, periods=BURN_IN):
  """`m` ergodic states `[n, m, n_state]` for each row of `theta` `[n, n_params]` (NumPy): the
  economy's ergodic draw (the perturbation's law where it has no closed form), moved `periods`
  periods under `policy` (which an endogenous state follows) with fresh shocks."""
  theta = np.asarray(theta, np.float32)
  n = theta.shape[0]
  thetas = tf.constant(np.repeat(theta, m, axis=0))
  state = economy.draw_state(thetas, tf.constant([seed, 401], tf.int32))
  eps = tf.random.stateless_normal([periods, n * m, economy.n_shock],
                                   seed=tf.constant([seed, 402], tf.int32))
  call = batched(policy) if policy is not None else None
  for t in range(periods):
    state = economy.next_state(call, state, thetas, eps[t])
  return state.numpy().reshape(n, m, economy.n_state).astype(np.float64)


def steady_state(economy, thetas):
  """The states' steady state `[n, n_state]` for `thetas` `[n, n_params]` (zero for an economy
  whose `state_mean` is None)."""
  mean = economy.state_mean(thetas)
  return tf.zeros([thetas.shape[0], economy.n_state]) if mean is None else mean


def simulate(economy, policy, theta, periods, seed=0, start="ergodic", solution=None):
  """One simulated path: columns period, <state> per state, <policy>_nn and <policy>_exact
  (closed form) or <policy>_reference (`solution`, solved here if not given), plus extra
  outputs."""
  states = state_paths(economy, theta, periods, 1, seed, start,
                       policy=policy)[:, 0]                                 # [periods, n_state]
  return _columns(economy, policy, theta, states, solution)


def impulse_response(economy, policy, theta, horizon=40, solution=None, shock=0):
  """Responses to a one-standard-deviation innovation of shock number `shock` (of
  `shock_names`), over `horizon` periods.

  Period 0 is the impact: from the steady state, the states take one step with the innovation
  and one without, its sign chosen so that the first state it moves rises (for NK |s_eps|,
  i.e. eps = -1 since s_eps < 0: a rise in the natural rate); both paths then follow the law
  of motion with no further shocks (an endogenous state with the network's policy). Columns are
  differences between the two paths, so a network's small offset at the steady state does not
  show up as a response; the reference is read at the network's states.
  """
  thetas = tf.constant(np.asarray(theta, np.float32)[None])
  rest = steady_state(economy, thetas)
  no_shock = tf.zeros([1, economy.n_shock])
  unit = tf.one_hot([shock], economy.n_shock)                                  # [1, n_shock]
  call = batched(policy)
  move = lambda state, eps: economy.next_state(call, state, thetas, eps)
  impact = (move(rest, unit) - move(rest, no_shock)).numpy()
  moved = np.flatnonzero(impact[0])
  sign = np.sign(impact[0, moved[0]]) if moved.size else 1.0
  paths = []
  for eps in (sign * unit, no_shock):
    state, rows = move(rest, eps), []
    for _ in range(horizon):
      rows.append(state)
      state = move(state, no_shock)
    paths.append(tf.concat(rows, axis=0).numpy())                             # [horizon, n_state]
  solution = solution or Solution(economy, theta)
  table = _columns(economy, policy, theta, paths[0], solution)
  base = _columns(economy, policy, theta, paths[1], solution)
  for name in list(state_columns(economy, paths[0])) + [
      f"{name}_{kind}" for name in value_names(economy) for kind in ("nn", solution.key)]:
    if name in table:
      table[name] = table[name] - base[name]
  return table


def value_names(economy):
  """Policies, then the served outputs that are not policies (their logs); an agent set's by
  their cross-sectional mean (`y_mean`, `c_mean`)."""
  k = economy.n_aggregate_policies
  return (list(economy.policy_names[:k]) + [f"{n}_mean" for n in economy.agent_policies]
          + [f"{n}_mean" if n in economy.agent_outputs else n for n in economy.output_names
             if n not in economy.policy_names])


def values(economy, theta, state, policies):
  """dict name -> `[...]`: the policies `[..., n_pol]` (at `state` `[..., n_state]`) and the
  extra outputs' logs (`value_names`)."""
  policies = np.asarray(policies)
  k, d = economy.n_aggregate_policies, len(economy.agent_policies)
  out = {name: policies[..., j] for j, name in enumerate(economy.policy_names[:k])}
  out.update({f"{name}_mean": policies[..., k + j::d].mean(axis=-1)
              for j, name in enumerate(economy.agent_policies)})
  out.update(extra_outputs(economy, state, theta, policies))
  return out


def _columns(economy, policy, theta, states, solution=None):
  """Table of a path `states` `[T, n_state]`: period, each state, then each value for the
  network and the reference."""
  solution = solution or Solution(economy, theta)
  table = {"period": np.arange(states.shape[0]), **state_columns(economy, states)}
  for kind, pol in with_reference(policy, solution, states, theta):
    for name, v in values(economy, theta, states, pol).items():
      table[f"{name}_{kind}"] = v
    if economy.constraint is not None:   # where it binds (figures shade it)
      from nk_keras import constraint
      table[f"{economy.constraint}_slack_{kind}"] = constraint.slack(economy, theta, states, pol)
  return table


def generalized_impulse_response(economy, policy, theta, shock=-1.0, horizon=40, draws=2000,
                                 seed=0, solution=None, which=0):
  """Nonlinear (generalised) impulse response to an innovation of `shock` std in period 0 of
  shock number `which` (of `shock_names`).

  Over `draws` ergodic starting states (the state of period -1) and the same future
  innovations, the mean difference between the path whose period-0 innovation is shifted by
  `shock` and the path without the shift (Koop, Pesaran and Potter 1996). Columns: period,
  <state> per state, <value>_nn and <value>_<key> (network and reference on the same states, in
  model units). Returns (table, raw): `raw` holds the paths themselves, {"state": {"shocked",
  "baseline"} -> `[horizon, draws, n_state]`, "nn"/<key>: {"shocked", "baseline"} -> {value ->
  `[horizon, draws]`}}, for further statistics (e.g. the share of paths at the ZLB).
  """
  solution = solution or Solution(economy, theta)
  thetas = tf.constant(np.tile(np.asarray(theta, np.float32)[None], (draws, 1)))
  start = economy.draw_state(thetas, tf.constant([seed, 301], tf.int32))
  eps = tf.random.stateless_normal([horizon, draws, economy.n_shock],
                                   seed=tf.constant([seed, 302], tf.int32))
  unit = tf.one_hot(which, economy.n_shock)                                 # [n_shock]
  call = batched(policy)
  paths = {}
  for name, shift in (("shocked", shock), ("baseline", 0.0)):
    state, rows = start, []
    for t in range(horizon):
      state = economy.next_state(call, state, thetas, eps[t] + (shift * unit if t == 0 else 0.0))
      rows.append(state)
    paths[name] = tf.stack(rows).numpy()                                     # [H, draws, n_state]
  shocked, baseline = (state_columns(economy, paths[k]) for k in ("shocked", "baseline"))
  table = {"period": np.arange(horizon),
           **{n: (shocked[n] - baseline[n]).mean(axis=1) for n in shocked}}
  raw = {"state": paths}
  sources = [("nn", lambda z: evaluate(policy, z, theta))]
  for kind, fn in sources + ([(solution.key, solution)] if solution.key else []):
    policies = {name: fn(z) for name, z in paths.items()}
    v = {name: values(economy, theta, z, policies[name]) for name, z in paths.items()}
    raw[kind] = {**v, "policies": policies}
    for value in value_names(economy):
      table[f"{value}_{kind}"] = (v["shocked"][value] - v["baseline"][value]).mean(axis=1)
  return table, raw


def sample_moments(names, series):
  """Std, first-order autocorrelation and pairwise correlations of `[periods, chains]` series.

  Pooled over chains around the grand mean: with many independent chains the mean is known to
  O(1/sqrt(periods * chains)), so the autocorrelation has none of the O(1/periods) bias of
  per-chain demeaning.
  """
  dev = {n: np.asarray(s, np.float64) - np.mean(s) for n, s in zip(names, series)}
  var = {n: np.mean(d ** 2) for n, d in dev.items()}
  out = {}
  for n, d in dev.items():
    out[f"std_{n}"] = float(np.sqrt(var[n]))
    out[f"autocorr_{n}"] = float(np.mean(d[1:] * d[:-1]) / var[n]) if var[n] > 0 else None
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      denom = np.sqrt(var[a] * var[b])
      out[f"corr_{a}_{b}"] = float(np.mean(dev[a] * dev[b]) / denom) if denom > 0 else None
  return out


def analytical_moments(economy, theta):
  """Population moments when the closed form is linear and the one state an AR(1) (the NK
  model).

  With X = a*zeta, Pi = b*zeta: std_X = |a|*sigma_erg, every autocorrelation is rho (that of
  the state), corr(X, Pi) = sign(a*b). None if the economy has no closed form or several
  states.
  """
  if economy.n_state != 1 or economy.endogenous_states:
    return None
  thetas = tf.constant(np.asarray(theta, np.float32)[None])
  std = economy.ergodic_std(thetas)                                            # [1, 1]
  exact = economy.closed_form(std, thetas)
  if exact is None:
    return None
  slopes = (exact / std).numpy()[0].astype(np.float64)                         # [n_pol]
  zero, no_shock = tf.zeros([1, 1]), tf.zeros([1, economy.n_shock])
  rho = float(((economy.step(std, thetas, no_shock, None)
                - economy.step(zero, thetas, no_shock, None))
               / std)[0, 0])
  std = float(std[0, 0])
  names = tuple(economy.state_names) + tuple(economy.policy_names)
  scales = np.concatenate([[1.0], slopes])
  out = {}
  for n, s in zip(names, scales):
    out[f"std_{n}"] = float(abs(s) * std)
    out[f"autocorr_{n}"] = rho if s != 0 else None
  for i, a in enumerate(names):
    for j in range(i + 1, len(names)):
      sign = np.sign(scales[i] * scales[j])
      out[f"corr_{a}_{names[j]}"] = float(sign) if sign != 0 else None
  return out


def moments(economy, policy, theta, chains=1000, periods=200, seed=0, solution=None,
            units=None):
  """Moments of `chains` independent stationary paths of `periods` periods each.

  Returns {"network": ..., "closed_form_simulated" (or "reference_simulated"): ...,
  "analytical": ...}: the network and the reference on the same simulated states (their
  difference is the policy error alone, free of sampling error), and, with a closed form, the
  population values (the sampling error is their distance to `closed_form_simulated`). Keys
  are std_<name>, autocorr_<name> and corr_<a>_<b> for each state and each value
  (`value_names`). `units`: dict value name -> factor applied before the moments (e.g. 400
  to annualise a quarterly log rate); stds scale with it, the rest is unit-free.
  """
  solution = solution or Solution(economy, theta)
  states = state_paths(economy, theta, periods, chains, seed, "ergodic", stream=1,
                       policy=policy)                                       # [T, C, S]
  columns = state_columns(economy, states)
  names = list(columns) + value_names(economy)
  units = units or {}

  def of(pol):
    v = values(economy, theta, states, pol)
    return sample_moments(names, list(columns.values())
                          + [units.get(n, 1.0) * v[n] for n in names[len(columns):]])

  out = {"network": of(evaluate(policy, states, theta))}
  if solution.key:
    source = "closed_form_simulated" if solution.closed else "reference_simulated"
    out[source] = of(solution(states))
  out["analytical"] = analytical_moments(economy, theta) if solution.closed else None
  return out


def write_csv(path, table):
  """`table`: dict of equal-length columns, written with a header row."""
  names = list(table)
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(names)
    for row in zip(*(table[n] for n in names)):
      # 9 significant digits round-trip float32 exactly.
      writer.writerow([int(v) if n == "period" else f"{float(v):.9g}" for n, v in zip(names, row)])
