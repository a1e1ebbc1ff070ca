"""Accuracy against the closed form (MODEL.md section 6) and unit-free equilibrium residuals.

`policy(state [n], theta [n, n_params]) -> [n, n_policies]` may be an in-memory
`ExtendedPolicy` or a loaded SavedModel (see `export.load_policy`).
"""

import numpy as np
import tensorflow as tf

LEVELS = (-2.0, -1.0, 0.0, 1.0, 2.0)   # state at k ergodic standard deviations


def draw_box(economy, n, seed):
  """`n` thetas uniform on the box `[n, n_params]`, whatever prior the economy trains with."""
  return economy.uniform_prior().sample(n, seed=tf.constant([seed, 7], tf.int32))


def evaluate(economy, policy, n_theta=20_000, seed=0, mc=100, calibration_state=0.01):
  """Scale-normalised errors and residual statistics as a JSON-ready dict (errors in percent)."""
  theta = draw_box(economy, n_theta, seed)                          # [n, P]
  std = economy.ergodic_std(theta)                                  # [n]
  scale = tf.abs(economy.closed_form(std, theta))                   # [n, n_pol]
  names = economy.policy_names
  errors, log10_res = [], []
  eps = economy.draw_shocks(mc, n_theta, tf.constant([seed, 8], tf.int32))
  for k in LEVELS:
    state = k * std
    approx = policy(state, theta)
    errors.append(tf.abs(approx - economy.closed_form(state, theta)) / scale)
    res = economy.residuals(policy, state, theta, eps) / std[:, None]
    log10_res.append(np.log10(np.abs(res.numpy()) + 1e-30))
  errors = 100 * np.stack([e.numpy() for e in errors])               # [levels, n, n_pol] in %
  log10_res = np.stack(log10_res)                                    # [levels, n, n_pol]

  def stats(a):
    return {"mean": float(a.mean()), "p95": float(np.percentile(a, 95)), "max": float(a.max())}

  summary = {name: stats(errors[..., j]) for j, name in enumerate(names)}
  per_level = {f"{k:+g}": {name: stats(errors[i, :, j]) for j, name in enumerate(names)}
               for i, k in enumerate(LEVELS)}
  residuals = {name: {"mean_log10": float(log10_res[..., j].mean()),
                      "max_log10": float(log10_res[..., j].max())}
               for j, name in enumerate(economy.residual_names)}
  theta_cal = tf.constant(economy.calibration[None], tf.float32)
  state_cal = tf.constant([calibration_state], tf.float32)
  exact = economy.closed_form(state_cal, theta_cal).numpy()[0]
  approx = policy(state_cal, theta_cal).numpy()[0]
  calibration = {name: {"nn": float(approx[j]), "exact": float(exact[j]),
                        "rel_error_pct": float(100 * abs(approx[j] - exact[j]) / abs(exact[j]))}
                 for j, name in enumerate(names)}
  return {"n_theta": n_theta, "seed": seed, "levels": list(LEVELS), "errors_pct": summary,
          "errors_pct_by_level": per_level, "residuals_log10": residuals,
          "calibration": {"state": calibration_state, **calibration},
          "_raw": {"theta": theta.numpy(), "errors_pct": errors}}


def markdown(report):
  """The error tables of `evaluate` as Markdown."""
  names = list(report["errors_pct"])
  lines = ["| error (% of policy at 1 ergodic std) | " + " | ".join(
      f"{n} {s}" for n in names for s in ("mean", "p95", "max")) + " |",
           "|---" * (1 + 3 * len(names)) + "|"]
  rows = [("all levels", report["errors_pct"])] + [
      (f"state = {k} std", v) for k, v in report["errors_pct_by_level"].items()]
  for label, table in rows:
    lines.append(f"| {label} | " + " | ".join(
        f"{table[n][s]:.4f}" for n in names for s in ("mean", "p95", "max")) + " |")
  cal = report["calibration"]
  lines += ["", f"Calibration point, state = {cal['state']}:", "",
            "| policy | network | closed form | rel. error (%) |", "|---|---|---|---|"]
  lines += [f"| {n} | {cal[n]['nn']:.6f} | {cal[n]['exact']:.6f} | {cal[n]['rel_error_pct']:.4f} |"
            for n in names]
  lines += ["", "Equilibrium residuals in ergodic std of the state (log10 |residual|):", "",
            "| equation | mean log10 | max log10 |", "|---|---|---|"]
  lines += [f"| {n} | {v['mean_log10']:.2f} | {v['max_log10']:.2f} |"
            for n, v in report["residuals_log10"].items()]
  return "\n".join(lines) + "\n"


def one_line(report):
  e, c = report["errors_pct"], report["calibration"]
  return "; ".join(f"{n}: mean {e[n]['mean']:.3f}% p95 {e[n]['p95']:.3f}% max {e[n]['max']:.2f}% "
                   f"cal {c[n]['rel_error_pct']:.3f}%" for n in e)


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
