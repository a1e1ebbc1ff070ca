"""Accuracy of a policy against the economy's reference solution, and what its residuals say.

The metric (docs/models.md, "Accuracy"): at each theta, the policy error at a set of states,
divided by the reference's own scale at that theta (`Reference.scale`: for the NK closed form its
response at one ergodic std, for time iteration the ergodic std of the reference policy).
Thetas are uniform on the box where an equilibrium exists. The states:
- one exogenous state: `economy.accuracy_levels` ergodic std of it (a table by level);
- several states: draws from the reference's own ergodic distribution (`ergodic_sample`).
An economy without a reference gets no measured error: its states are drawn by simulating the
policy itself, and the report has the residuals and the error estimate alone.

Every report also carries `estimated_error`, the residual-only estimate of `error_estimate.py` at
a subsample of the thetas, in the metric's units (beside the measured error where there is one).

`policy(state [n, n_state], theta [n, n_params]) -> [n, n_policies]` may be an in-memory
`ExtendedPolicy` or a loaded SavedModel (see `export.LoadedPolicy`).
"""

import numpy as np
import tensorflow as tf

from nk_keras import error_estimate, simulation
from nk_keras.reference import ClosedFormReference

ERGODIC_STATES = 16    # states per theta where the metric's states are ergodic draws
ESTIMATE_THETA = 100   # thetas of the residual-only error estimate (its cost: ~0.1 s each)
# Where the estimate fits each theta's error: one exogenous state on FIT_GRID points of
# +-FIT_SPAN ergodic std weighted by its normal law (a grid this fine integrates an error local
# to a kink; 81 points on +-4 std cost 0.2 s less per 100 thetas, with a 2x higher floor),
# several states on FIT_STATES of the policy's own ergodic draws. Never the metric's evenly
# spread levels: BUILD_NOTES, "The error estimate".
FIT_GRID, FIT_SPAN, FIT_STATES = 201, 5.0, 64


def draw_box(economy, n, seed):
  """`n` thetas uniform on the box `[n, n_params]`, inside the economy's domain, whatever prior
  the economy trains with."""
  return economy.sample_inside(economy.uniform_prior(), n, tf.constant([seed, 7], tf.int32))


def on_levels(economy):
  """Whether the metric's states are levels of one exogenous state (else ergodic draws)."""
  return economy.n_state == 1 and not economy.endogenous_states


class Points:
  """The metric's points, solved once: thetas uniform on the box where an equilibrium exists
  (`n_theta` draws; those where the reference finds no solution, rare, are dropped and counted
  in `n_dropped`), the states (`state` `[n, L, n_state]`: levels of the one state, or `L`
  ergodic draws of the reference), and the reference's policies `exact` `[n, L, n_pol]` and
  `scale` `[n, n_pol]` there. `errors(policy)` measures any policy on them. Without a
  reference, `exact` is None, the states are the policy's own ergodic draws and `scale` the
  policy's ergodic std over them."""

  def __init__(self, economy, n_theta=None, seed=0, progress=False, policy=None):
    n_theta = n_theta or economy.eval_theta
    theta = draw_box(economy, n_theta, seed).numpy().astype(np.float64)  # [n, P]
    self.levels = tuple(economy.accuracy_levels) if on_levels(economy) else None
    self.reference_kind = None
    if not economy.has_reference():
      self.theta, self.n_dropped, self.exact = theta, 0, None
      self.state = simulation.ergodic_states(economy, policy, theta, ERGODIC_STATES, seed)
      own = np.asarray(simulation.batched(policy)(
          self.state.reshape(-1, economy.n_state), np.repeat(theta, ERGODIC_STATES, 0)))
      self.scale = own.reshape(len(theta), ERGODIC_STATES, -1).std(axis=1)
      return
    reference = economy.reference(theta, progress=progress)
    valid = reference.valid
    if self.levels is not None:
      std = economy.ergodic_std(tf.constant(theta)).numpy()                # [n, 1]
      state = std[:, None, :] * np.array(self.levels)[None, :, None]     # [n, L, 1]
    else:
      state = reference.ergodic_sample(chains=ERGODIC_STATES, seed=seed)  # [n, L, S]
    self.exact = reference.policies(state)[valid]                         # [n, L, n_pol]
    self.scale = reference.scale()[valid]                                 # [n, n_pol]
    self.theta, self.state = theta[valid], state[valid]
    self.n_dropped = int(n_theta - self.theta.shape[0])
    self.reference_kind = ("policy at 1 ergodic std" if isinstance(reference, ClosedFormReference)
                           else "the reference's ergodic std")

  def approx(self, policy):
    """The policy at the points, `[n, L, n_pol]` (float64)."""
    return approx(policy, self.theta, self.state)

  def errors(self, policy):
    """`[L, n, n_pol]`: |policy - reference| in percent of the reference's scale."""
    errors = 100 * np.abs(self.approx(policy) - self.exact) / self.scale[:, None, :]
    return np.transpose(errors, (1, 0, 2))


def approx(policy, theta, state):
  """`policy` at the states `state` `[n, L, S]` of each theta `theta` `[n, P]`, `[n, L, n_pol]`
  (float64), called on `APPROX_CHUNK` rows at a time: a Keras network called eagerly holds
  every layer's activations until it returns (~150 MB at the 100,000 rows of 20,000 thetas)."""
  n, L, S = state.shape
  theta32 = tf.constant(np.repeat(theta, L, axis=0), tf.float32)
  state32 = tf.constant(state.reshape(-1, S), tf.float32)
  out = np.concatenate([np.asarray(policy(state32[i:i + APPROX_CHUNK],
                                          theta32[i:i + APPROX_CHUNK]), np.float64)
                        for i in range(0, max(n * L, 1), APPROX_CHUNK)])
  return out.reshape(n, L, -1)


APPROX_CHUNK = 16_384


def stats(a):
  return {"mean": float(np.mean(a)), "p95": float(np.percentile(a, 95)), "max": float(np.max(a))}


def evaluate(economy, policy, n_theta=None, seed=0, mc=100, progress=False):
  """Scale-normalised errors (where the economy has a reference), residual statistics and the
  residual-only error estimate, as a JSON-ready dict (errors in percent), on
  `Points(economy, n_theta, seed)` (`n_theta` default `economy.eval_theta`: what its reference
  solves in minutes)."""
  points = Points(economy, n_theta, seed, progress, policy)
  theta, state, n = points.theta, points.state, points.theta.shape[0]
  names = economy.policy_names
  report = {"economy": economy.name, "scale": points.reference_kind or
            "the policy's own ergodic std (no reference)", "n_theta": n,
            "n_theta_no_reference": points.n_dropped, "seed": seed,
            "levels": list(points.levels) if points.levels else "ergodic"}
  raw = {"theta": theta}
  if points.exact is not None:
    errors = points.errors(policy)                                       # [L, n, n_pol]
    raw["errors_pct"] = errors
    report["errors_pct"] = {name: stats(errors[..., j]) for name, j in economy.groups("policies")}
    if points.levels:
      report["errors_pct_by_level"] = {
          f"{k:+g}": {name: stats(errors[i, :, j]) for j, name in enumerate(names)}
          for i, k in enumerate(points.levels)}
    report["calibration"] = calibration_point(economy, policy)
  report["residuals_log10"] = residual_statistics(economy, policy, points, mc, seed)
  report["estimated_error"] = estimated_error(economy, policy, points, seed)
  return {**report, **economy.accuracy_extras(policy), "_raw": raw}


def residual_statistics(economy, policy, points, mc, seed):
  """log10 |residual| in the economy's residual scale at the points: mean and max per
  equation."""
  n, L, S = points.state.shape
  theta_t = tf.constant(np.repeat(points.theta, L, 0), tf.float32)
  state_t = tf.constant(points.state.reshape(-1, S), tf.float32)
  std = economy.residual_scale(theta_t)
  eps = economy.draw_shocks(mc, n * L, tf.constant([seed, 8], tf.int32))
  # One graph for every chunk (any batch: traced once), which frees each layer's activations as
  # soon as they are used; eager calls held them all, ~0.8 GB at 4096 points.
  scaled = tf.function(
      lambda s, t, e, sd: economy.residuals(policy, s, t, e) / sd[:, None],
      input_signature=[tf.TensorSpec([None, S]), tf.TensorSpec([None, theta_t.shape[1]]),
                       tf.TensorSpec([None, None, economy.n_shock]), tf.TensorSpec([None])])
  residuals = np.concatenate([
      scaled(state_t[i:i + CHUNK], theta_t[i:i + CHUNK], eps[:, i:i + CHUNK],
             std[i:i + CHUNK]).numpy() for i in range(0, n * L, CHUNK)])
  # Floored at float32's round-off: an exact zero (a household at its borrowing limit, where
  # the complementarity function vanishes) would pull the mean down by its -30 alone.
  logs = np.log10(np.maximum(np.abs(residuals), 1e-8))
  return {name: {"mean_log10": float(logs[:, j].mean()), "max_log10": float(logs[:, j].max())}
          for name, j in economy.groups("residuals")}


# Points per residual call: (1 + mc) network rows each, ~26 MB per 64-unit layer at mc = 100
# (the whole evaluation's peak at 4096 points; no faster there).
CHUNK = 1024


def estimated_error(economy, policy, points, seed):
  """The residual-only error estimate (`error_estimate.estimate`) at the first
  `ESTIMATE_THETA` thetas (the draws are uniform, so a random subsample), in percent of
  the same scale as the measured error; with a reference also the measured error on the same
  thetas, and their Spearman rank correlation over thetas."""
  k = min(ESTIMATE_THETA, len(points.theta))
  if economy.n_shock > max(error_estimate.NODES):
    return {"n_theta": 0, "skipped": f"economy {economy.name!r} has {economy.n_shock} shocks; "
            f"the estimate's product quadrature is for at most {max(error_estimate.NODES)}"}
  theta = points.theta[:k]
  estimate = np.abs(error_estimate.estimate(economy, policy, theta, points.state[:k],
                                            points.scale[:k], fit=fit_states(
                                                economy, policy, theta, seed)))  # [k, L, n_pol]
  out = {"n_theta": k, "method": "linearised residuals, error affine in the states per theta, "
         "fitted over their ergodic law (nk_keras/error_estimate.py)"}
  if points.exact is not None:   # the policy at the k thetas alone, not at all of them
    measured_all = 100 * np.abs(approx(policy, points.theta[:k], points.state[:k])
                                - points.exact[:k]) / points.scale[:k, None, :]
  for name, j in economy.groups("policies"):
    out[name] = stats(estimate[..., j])
    if points.exact is not None:
      measured = measured_all[..., j]
      out[name]["measured_mean_same_thetas"] = float(measured.mean())
      out[name]["spearman_over_thetas"] = float(_spearman(
          measured.reshape(k, -1).mean(1), estimate[..., j].reshape(k, -1).mean(1)))
  return out


def fit_states(economy, policy, theta, seed):
  """States `[k, K, n_state]` at each theta `[k, P]` carrying the state's ergodic law, and their
  weights `[k, K]`, from the economy and the policy alone (no reference)."""
  if on_levels(economy):
    x = np.linspace(-FIT_SPAN, FIT_SPAN, FIT_GRID)
    std = economy.ergodic_std(tf.constant(theta)).numpy()                  # [k, 1]
    return std[:, None, :] * x[None, :, None], np.tile(np.exp(-0.5 * x ** 2), (len(theta), 1))
  state = simulation.ergodic_states(economy, policy, theta, FIT_STATES, seed)
  return state, np.ones(state.shape[:2])


def _spearman(a, b):
  rank = lambda x: np.argsort(np.argsort(x))
  return np.corrcoef(rank(a), rank(b))[0, 1] if len(a) > 2 else float("nan")


def calibration_point(economy, policy):
  """Network vs reference at the calibration and `economy.calibration_state` (with several
  states: the steady state): values, the relative error and the error in the metric's scale
  (percent)."""
  theta = economy.calibration[None].astype(np.float64)
  reference = economy.reference(theta)
  if economy.n_state == 1:
    state = np.array([[[economy.calibration_state]]])                   # [1, 1, n_state]
  else:
    state = simulation.steady_state(economy, tf.constant(theta, tf.float32)).numpy()[None]
  exact = reference.policies(state)[0, 0]
  scale = reference.scale()[0]
  approx = np.asarray(policy(tf.constant(state[0], tf.float32),
                             tf.constant(theta, tf.float32)), np.float64)[0]
  # An agent set: the aggregate states named (its agents sit at the steady state), and each
  # agent policy as its agents' mean value and largest error.
  named = economy.state_names[:economy.n_aggregate_states]
  return {"state": (economy.calibration_state if economy.n_state == 1 else
                    dict(zip(named, state[0, 0].tolist()))), **{
      name: {"nn": float(approx[j].mean()), "exact": float(exact[j].mean()),
             "rel_error_pct": relative_error_pct(approx[j], exact[j]),
             "scaled_error_pct": float(np.max(100 * abs(approx[j] - exact[j]) / scale[j]))}
      for name, j in economy.groups("policies")}}


def relative_error_pct(approx, exact):
  """The largest |approx / exact - 1| in percent; None (JSON null) where an exact value is
  zero (a policy in deviations at its steady state): NaN or Infinity is not JSON."""
  if np.any(exact == 0):
    return None
  return float(np.max(100 * np.abs(approx - exact) / np.abs(exact)))


def markdown(report):
  """The tables of `evaluate` as Markdown."""
  est = report["estimated_error"]
  names = estimated_names(report) or list(report.get("errors_pct", {}))
  scale = report.get("scale", "policy at 1 ergodic std")
  columns = " | ".join(f"{n} {s}" for n in names for s in ("mean", "p95", "max"))
  lines = []
  if "errors_pct" in report:
    lines += [f"| error (% of {scale}) | {columns} |", "|---" * (1 + 3 * len(names)) + "|"]
    rows = [("all levels" if "errors_pct_by_level" in report else "ergodic states",
             report["errors_pct"])] + [
        (f"state = {k} std", v) for k, v in report.get("errors_pct_by_level", {}).items()]
    # Economies with a ZLB mark the levels where it binds at the calibration (reference).
    binds = (report.get("zlb") or {}).get("binds_by_level")
    if binds is not None:
      lines[0] += " ZLB binds at calibration |"
      lines[1] += "---|"
    for label, table in rows:
      lines.append(f"| {label} | " + " | ".join(
          f"{table[n][s]:.4f}" for n in names for s in ("mean", "p95", "max")) + " |")
      if binds is not None:
        level = label.removeprefix("state = ").removesuffix(" std")
        lines[-1] += f" {({True: 'yes', False: 'no'}.get(binds.get(level), ''))} |"
    cal = report["calibration"]
    lines += ["", f"Calibration point, state = {cal['state']}:", "",
              "| policy | network | reference | rel. error (%) | error (% of scale) |",
              "|---|---|---|---|---|"]
    lines += [f"| {n} | {cal[n]['nn']:.6f} | {cal[n]['exact']:.6f} | "
              + ("n/a" if cal[n]["rel_error_pct"] is None else f"{cal[n]['rel_error_pct']:.4f}")
              + f" | {cal[n]['scaled_error_pct']:.4f} |" for n in names]
    lines.append("")
  else:
    lines += [f"Economy {report['economy']!r} has no reference solution: no measured error.", ""]
  if "skipped" in est:
    lines += [f"Estimated error from the residuals alone: not estimated ({est['skipped']}).",
              ""]
  else:
    lines += estimate_markdown(est, names, scale)
  lines += ["", "Equilibrium residuals in the economy's residual scale (log10 |residual|):", "",
            "| equation | mean log10 | max log10 |", "|---|---|---|"]
  lines += [f"| {n} | {v['mean_log10']:.2f} | {v['max_log10']:.2f} |"
            for n, v in report["residuals_log10"].items()]
  lines += extras_markdown(report)
  return "\n".join(lines) + "\n"


def estimated_names(report):
  """The policies (pooled over agents) of the report's error estimate; [] where skipped."""
  return [k for k, v in report["estimated_error"].items() if isinstance(v, dict)]


def estimate_markdown(est, names, scale):
  columns = " | ".join(f"{n} {s}" for n in names for s in ("mean", "p95", "max"))
  lines = [f"Estimated error from the residuals alone (% of {scale}, {est['n_theta']} thetas; "
            "nk_keras/error_estimate.py):", "", f"| | {columns} |",
            "|---" * (1 + 3 * len(names)) + "|",
            "| estimate | " + " | ".join(f"{est[n][s]:.4f}" for n in names
                                        for s in ("mean", "p95", "max")) + " |"]
  if "measured_mean_same_thetas" in est[names[0]]:
    lines += ["", "| policy | measured mean, same thetas | estimated mean | Spearman over "
              "thetas |", "|---|---|---|---|"]
    lines += [f"| {n} | {est[n]['measured_mean_same_thetas']:.4f} | {est[n]['mean']:.4f} | "
              f"{est[n]['spearman_over_thetas']:.2f} |" for n in names]
  return lines


def extras_markdown(report):
  """Lines for the economy's extras (`accuracy_extras`) when present: the ZLB frequency and
  the unit-free Euler errors at the calibration."""
  lines = []
  zlb, euler = report.get("zlb"), report.get("euler_errors_log10")
  if zlb:
    lines += ["", "Ergodic ZLB frequency at the calibration:", "",
              "| network (%) | reference (%) | difference (pp) |", "|---|---|---|",
              f"| {100 * zlb['frequency_nn']:.3f} | {100 * zlb['frequency_reference']:.3f} | "
              f"{zlb['difference_pp']:+.3f} |"]
  if euler:
    lines += ["", "Unit-free Euler errors log10 |1 - C_implied / C| at the calibration, "
              f"{euler['network']['draws']} ergodic draws of the state:", "",
              "| policy | mean log10 | max log10 |", "|---|---|---|"]
    lines += [f"| {source} | {v['mean']:.2f} | {v['max']:.2f} |" for source, v in euler.items()]
  aggregates = report.get("aggregates")
  if aggregates:
    lines += ["", f"Aggregates along {aggregates['states']} ergodic states at the calibration: "
              f"the ZLB binds in {100 * aggregates['zlb_share']:.1f} %; inflation "
              f"{aggregates['inflation_gap_pp']:+.2f} pp and the real rate "
              f"{aggregates['real_rate_gap_pp']:+.2f} pp (annualised), hours "
              f"{aggregates['hours_gap_pct']:+.2f} % off their steady state on average."]
  households = report.get("households")
  if households:
    e = households["euler_log10"]
    lines += ["", f"Households along ergodic simulations ({households['n_theta']} thetas, "
              f"{households['states']} states):", "",
              "| unit-free consumption error, log10 | mean | p99 | max |", "|---|---|---|---|",
              f"| {e['households']} households that save | {e['mean']:.2f} | {e['p99']:.2f} | "
              f"{e['max']:.2f} |",
              f"| the same, Euler equation alone | "
              f"{households['euler_log10_every_saver']['mean']:.2f} | "
              f"{households['euler_log10_every_saver']['p99']:.2f} | |", "",
              "(A household that saves a little but would rather consume more is off by the "
              "smaller of the two fixes: the Euler equation, or the borrowing limit.)", "",
              f"At the borrowing limit: {100 * households['share_at_limit']:.1f} % (the largest "
              f"shortfall of their Euler gap: {households['limit_shortfall_max']:.2g}); bond "
              f"market off by at most {households['bond_market_max_abs']:.2g}.", "",
              "| wealth at the calibration | mean by productivity state | Gini | share under "
              "0.25 |", "|---|---|---|---|"]
    for label, key in (("network", "wealth"), ("continuum policy, these households",
                                              "wealth_continuum_policy"),
                       ("continuum steady state", "wealth_continuum")):
      w = households[key]
      lines.append(f"| {label} | {' / '.join(f'{x:.2f}' for x in w['wealth_by_state'])} | "
                   f"{w['gini']:.3f} | {100 * w['share_under_0.25']:.1f} % |")
  responses = report.get("impulse_responses")
  if responses and "skipped" in responses:
    lines += ["", f"Small-shock responses against the continuum: skipped ({responses['skipped']})."]
  elif responses:
    lines += ["", f"Small-shock responses at the calibration to a preference innovation of "
              f"{responses['shock_std']:g} std, divided by its size ({responses['draws']} ergodic "
              f"starts, L = {responses['L']}), against the continuum's first order "
              "(sequence-jacobian), at the continuum's peak:", "",
              "| log | peak period | continuum | network | gap |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['peak_period']} | {r['continuum_peak']:.3g} | "
              f"{r['network_at_peak']:.3g} | {100 * r['relative_gap']:+.1f} % |"
              for name, r in ((n, responses[n]) for n in ("N", "Pi"))]
  return lines


def one_line(report):
  if "errors_pct" not in report:
    est = report["estimated_error"]
    if "skipped" in est:
      return "no reference; residuals (log10 mean): " + "; ".join(
          f"{n} {v['mean_log10']:.2f}" for n, v in report["residuals_log10"].items())
    return "no reference; estimated from residuals: " + "; ".join(
        f"{n}: mean {est[n]['mean']:.3f}% p95 {est[n]['p95']:.3f}%" for n in estimated_names(report))
  e, c = report["errors_pct"], report["calibration"]
  return "; ".join(f"{n}: mean {e[n]['mean']:.3f}% p95 {e[n]['p95']:.3f}% max {e[n]['max']:.2f}% "
                   f"cal {c[n]['rel_error_pct']:.3f}% ({c[n]['scaled_error_pct']:.3f}% of scale)"
                   for n in e)


def summary(report):
  """The report without its raw arrays (JSON-ready)."""
  return {k: v for k, v in report.items() if not k.startswith("_")}


def write(report, out, name="evaluation"):
  """`<out>/<name>.json` and `<out>/<name>.md`."""
  import json
  import os
  with open(os.path.join(out, f"{name}.json"), "w") as f:
    json.dump(summary(report), f, indent=2)
  with open(os.path.join(out, f"{name}.md"), "w") as f:
    f.write(markdown(report))
