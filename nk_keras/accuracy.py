"""Accuracy of a policy against the economy's reference solution, and unit-free residuals.

The metric (docs/models.md, "Accuracy"): at each theta, the policy error at states of `k`
ergodic std (`economy.accuracy_levels`), divided by the reference's own scale at that theta
(`Reference.scale`: for the NK closed form its response at one ergodic std, for the ZLB model
the ergodic std of the reference policy). Thetas are uniform on the box where an equilibrium
exists. The metric is defined along one state: economies with several states are refused by
name (`Economy.require_one_state`).

`policy(state [n, n_state], theta [n, n_params]) -> [n, n_policies]` may be an in-memory
`ExtendedPolicy` or a loaded SavedModel (see `export.LoadedPolicy`).
"""

import numpy as np
import tensorflow as tf

from nk_keras.reference import ClosedFormReference


def draw_box(economy, n, seed):
  """`n` thetas uniform on the box `[n, n_params]`, inside the economy's domain, whatever prior
  the economy trains with."""
  return economy.sample_inside(economy.uniform_prior(), n, tf.constant([seed, 7], tf.int32))


class Points:
  """The metric's points, solved once: thetas uniform on the box where an equilibrium exists
  (`n_theta` draws; those where the reference finds no solution, rare, are dropped and counted
  in `n_dropped`), the states at `economy.accuracy_levels` ergodic std, and the reference's
  policies and scales there. `errors(policy)` measures any policy on them."""

  def __init__(self, economy, n_theta=None, seed=0, progress=False):
    economy.require_one_state("the accuracy metric")
    n_theta = n_theta or economy.eval_theta
    theta = draw_box(economy, n_theta, seed).numpy().astype(np.float64)  # [n, P]
    reference = economy.reference(theta, progress=progress)
    valid = reference.valid
    self.levels = tuple(economy.accuracy_levels)
    std = economy.ergodic_std(tf.constant(theta)).numpy()[:, 0]           # [n]: the one state
    state = (std[:, None] * np.array(self.levels)[None])[..., None]       # [n, L, 1]
    self.exact = reference.policies(state)[valid]                         # [n, L, n_pol]
    self.scale = reference.scale()[valid]                                 # [n, n_pol]
    self.theta, self.std, self.state = theta[valid], std[valid], state[valid]
    self.n_dropped = int(n_theta - self.theta.shape[0])
    self.reference_kind = ("policy at 1 ergodic std" if isinstance(reference, ClosedFormReference)
                           else "the reference's ergodic std")

  def errors(self, policy):
    """`[L, n, n_pol]`: |policy - reference| in percent of the reference's scale."""
    theta32 = tf.constant(np.repeat(self.theta, len(self.levels), axis=0), tf.float32)
    approx = np.asarray(policy(tf.constant(self.state.reshape(-1, 1), tf.float32), theta32),
                        np.float64).reshape(self.exact.shape)
    errors = 100 * np.abs(approx - self.exact) / self.scale[:, None, :]  # [n, L, n_pol]
    return np.transpose(errors, (1, 0, 2))


def evaluate(economy, policy, n_theta=None, seed=0, mc=100, progress=False):
  """Scale-normalised errors and residual statistics as a JSON-ready dict (errors in percent),
  on `Points(economy, n_theta, seed)` (`n_theta` default `economy.eval_theta`: what its
  reference solves in minutes)."""
  points = Points(economy, n_theta, seed, progress)
  errors = points.errors(policy)                                         # [L, n, n_pol]
  theta, std, levels, n = points.theta, points.std, points.levels, points.theta.shape[0]
  theta_t = tf.constant(theta, tf.float32)
  std_t = tf.constant(std, tf.float32)
  eps = economy.draw_shocks(mc, n, tf.constant([seed, 8], tf.int32))
  log10_res = np.stack([np.log10(np.abs(
      (economy.residuals(policy, k * std_t[:, None], theta_t, eps) / std_t[:, None]).numpy())
      + 1e-30)
      for k in levels])                                                  # [L, n, n_res]
  names = economy.policy_names

  def stats(a):
    return {"mean": float(a.mean()), "p95": float(np.percentile(a, 95)), "max": float(a.max())}

  summary = {name: stats(errors[..., j]) for j, name in enumerate(names)}
  per_level = {f"{k:+g}": {name: stats(errors[i, :, j]) for j, name in enumerate(names)}
               for i, k in enumerate(levels)}
  residuals = {name: {"mean_log10": float(log10_res[..., j].mean()),
                      "max_log10": float(log10_res[..., j].max())}
               for j, name in enumerate(economy.residual_names)}
  return {"economy": economy.name, "scale": points.reference_kind, "n_theta": n,
          "n_theta_no_reference": points.n_dropped, "seed": seed, "levels": list(levels),
          "errors_pct": summary, "errors_pct_by_level": per_level, "residuals_log10": residuals,
          "calibration": calibration_point(economy, policy),
          **economy.accuracy_extras(policy),
          "_raw": {"theta": theta, "errors_pct": errors}}


def calibration_point(economy, policy):
  """Network vs reference at the calibration and `economy.calibration_state`: values, the
  relative error and the error in the metric's scale (percent)."""
  economy.require_one_state("the accuracy metric's calibration point")
  theta = economy.calibration[None].astype(np.float64)
  reference = economy.reference(theta)
  state = np.array([[[economy.calibration_state]]])                     # [1, 1, n_state]
  exact = reference.policies(state)[0, 0]
  scale = reference.scale()[0]
  approx = np.asarray(policy(tf.constant([[economy.calibration_state]], tf.float32),
                             tf.constant(theta, tf.float32)), np.float64)[0]
  return {"state": economy.calibration_state, **{
      name: {"nn": float(approx[j]), "exact": float(exact[j]),
             "rel_error_pct": float(100 * abs(approx[j] - exact[j]) / abs(exact[j])),
             "scaled_error_pct": float(100 * abs(approx[j] - exact[j]) / scale[j])}
      for j, name in enumerate(economy.policy_names)}}


def markdown(report):
  """The error tables of `evaluate` as Markdown."""
  names = list(report["errors_pct"])
  scale = report.get("scale", "policy at 1 ergodic std")
  lines = [f"| error (% of {scale}) | " + " | ".join(
      f"{n} {s}" for n in names for s in ("mean", "p95", "max")) + " |",
           "|---" * (1 + 3 * len(names)) + "|"]
  rows = [("all levels", report["errors_pct"])] + [
      (f"state = {k} std", v) for k, v in report["errors_pct_by_level"].items()]
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
            f"{cal[n]['rel_error_pct']:.4f} | {cal[n]['scaled_error_pct']:.4f} |" for n in names]
  lines += ["", "Equilibrium residuals in ergodic std of the state (log10 |residual|):", "",
            "| equation | mean log10 | max log10 |", "|---|---|---|"]
  lines += [f"| {n} | {v['mean_log10']:.2f} | {v['max_log10']:.2f} |"
            for n, v in report["residuals_log10"].items()]
  lines += extras_markdown(report)
  return "\n".join(lines) + "\n"


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
  return lines


def one_line(report):
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
