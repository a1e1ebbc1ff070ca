"""Simulations of an economy under a policy: state paths, impulse responses and moments.

`policy(state [n], theta [n, n_params]) -> [n, n_policies]` may be an in-memory
`ExtendedPolicy`, a `LoadedPolicy` or the closed form itself. `theta` here is one parameter
vector `[n_params]`; results are NumPy arrays in the model's units (log deviations from the
steady state), as dicts of named columns ready for CSV/JSON.

The state is simulated first (a cheap loop over periods, vectorised over chains) and the policy
is then called once on every simulated point, so the network never runs inside the time loop.
"""

import csv

import numpy as np
import tensorflow as tf

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
    n = int(state.shape[0])
    if n <= size:
      return tf.convert_to_tensor(policy(state, theta), tf.float32)
    return tf.concat([tf.convert_to_tensor(policy(state[i:i + size], theta[i:i + size]),
                                           tf.float32)
                      for i in range(0, n, size)], axis=0)
  return call


def evaluate(policy, state, theta):
  """Policies `[..., n_pol]` at `state` `[...]` (any shape) for one `theta` `[n_params]`."""
  state = np.asarray(state, np.float32)
  flat = state.reshape(-1)
  thetas = np.tile(np.asarray(theta, np.float32)[None], (flat.size, 1))
  out = np.asarray(batched(policy)(flat, thetas))
  return out.reshape(state.shape + out.shape[-1:])


def closed_form(economy, state, theta):
  """Exact policies `[..., n_pol]` at `state` `[...]`, or None if the economy has none."""
  state = np.asarray(state, np.float32)
  flat = state.reshape(-1)
  thetas = np.tile(np.asarray(theta, np.float32)[None], (flat.size, 1))
  exact = economy.closed_form(tf.constant(flat), tf.constant(thetas))
  if exact is None:
    return None
  exact = exact.numpy()
  return exact.reshape(state.shape + exact.shape[-1:])


def state_paths(economy, theta, periods, chains=1, seed=0, start="ergodic", stream=0):
  """`[periods, chains]` paths of the state; row 0 is the start, then one AR step per row.

  `seed` and `stream` make the stateless seeds: the same seed with different streams gives
  independent draws (the app's short path and its moment chains).

  `start`: "ergodic" draws row 0 from the ergodic distribution (the path is then stationary
  from its first period, no burn-in needed); "zero" starts at the steady state.
  """
  if start not in ("ergodic", "zero"):
    raise ValueError(f"start must be 'ergodic' or 'zero', got {start!r}")
  thetas = tf.constant(np.tile(np.asarray(theta, np.float32)[None], (chains, 1)))
  # Separate seed streams for the start and the shocks, so changing one leaves the other alone.
  if start == "ergodic":
    state = economy.draw_state(thetas, tf.constant([seed, 100 * stream + 1], tf.int32))
  else:
    state = tf.zeros([chains])
  eps = tf.random.stateless_normal([max(periods - 1, 0), chains],
                                   seed=tf.constant([seed, 100 * stream + 2], tf.int32))
  rows = [state]
  for t in range(periods - 1):   # sequential by nature; each step is vectorised over chains
    state = economy.step(state, thetas, eps[t])
    rows.append(state)
  return tf.stack(rows).numpy()


def simulate(economy, policy, theta, periods, seed=0, start="ergodic"):
  """One simulated path: columns period, <state>, <policy>_nn and, if known, <policy>_exact."""
  zeta = state_paths(economy, theta, periods, 1, seed, start)[:, 0]          # [periods]
  return _columns(economy, policy, theta, zeta)


def impulse_response(economy, policy, theta, horizon=40):
  """Responses to a one-standard-deviation rise of the state's innovation, over `horizon` periods.

  Period 0 is the impact: the state jumps from the steady state (0) by the size of one
  innovation, |step(0, theta, 1) - step(0, theta, 0)| (for NK |s_eps|, i.e. eps = -1 since
  s_eps < 0: a rise in the natural rate), then follows the law of motion with no further
  shocks. Policy columns are differences from the no-shock path (state 0 throughout), so a
  network's small offset at the steady state does not show up as a response.
  """
  thetas = tf.constant(np.asarray(theta, np.float32)[None])
  zero = tf.zeros([1])
  impact = economy.step(zero, thetas, tf.ones([1])) - economy.step(zero, thetas, tf.zeros([1]))
  state = tf.abs(impact)
  rows = [state]
  for _ in range(horizon - 1):
    state = economy.step(state, thetas, tf.zeros([1]))
    rows.append(state)
  zeta = tf.concat(rows, axis=0).numpy()                                       # [horizon]
  table = _columns(economy, policy, theta, zeta)
  base = _columns(economy, policy, theta, np.zeros(1, np.float32))
  for name in economy.policy_names:
    for kind in ("nn", "exact"):
      key = f"{name}_{kind}"
      if key in table:
        table[key] = table[key] - base[key][0]
  return table


def _columns(economy, policy, theta, zeta):
  nn = evaluate(policy, zeta, theta)                                           # [T, n_pol]
  exact = closed_form(economy, zeta, theta)
  table = {"period": np.arange(zeta.size), economy.state_name: zeta}
  for j, name in enumerate(economy.policy_names):
    table[f"{name}_nn"] = nn[:, j]
  if exact is not None:
    for j, name in enumerate(economy.policy_names):
      table[f"{name}_exact"] = exact[:, j]
  return table


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
  """Population moments when the closed form is linear and the state an AR(1) (the NK model).

  With X = a*zeta, Pi = b*zeta: std_X = |a|*sigma_erg, every autocorrelation is rho (that of
  the state), corr(X, Pi) = sign(a*b). None if the economy has no closed form.
  """
  thetas = tf.constant(np.asarray(theta, np.float32)[None])
  std = economy.ergodic_std(thetas)                                            # [1]
  exact = economy.closed_form(std, thetas)
  if exact is None:
    return None
  slopes = (exact / std[:, None]).numpy()[0].astype(np.float64)               # [n_pol]
  zero = tf.zeros([1])
  rho = float(((economy.step(std, thetas, zero) - economy.step(zero, thetas, zero)) / std)[0])
  std = float(std[0])
  names = (economy.state_name,) + tuple(economy.policy_names)
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


def moments(economy, policy, theta, chains=1000, periods=200, seed=0):
  """Moments of `chains` independent stationary paths of `periods` periods each.

  Returns {"network": ..., "closed_form_simulated": ..., "analytical": ...}: the network and
  the closed form on the same simulated states (their difference is the policy error alone,
  free of sampling error), and the population values (the sampling error is their distance to
  `closed_form_simulated`). Keys are std_<name>, autocorr_<name> and corr_<a>_<b> for the state
  and each policy.
  """
  zeta = state_paths(economy, theta, periods, chains, seed, "ergodic", stream=1)  # [T, C]
  names = [economy.state_name] + list(economy.policy_names)
  nn = evaluate(policy, zeta, theta)                                           # [T, C, n_pol]
  out = {"network": sample_moments(names, [zeta] + [nn[..., j] for j in range(nn.shape[-1])])}
  exact = closed_form(economy, zeta, theta)
  if exact is not None:
    out["closed_form_simulated"] = sample_moments(
        names, [zeta] + [exact[..., j] for j in range(exact.shape[-1])])
  out["analytical"] = analytical_moments(economy, theta)
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
