"""Section 4: time to accuracy. For each economy and regime, the training wall time until the
mean scale-normalised error of every policy first falls below 1, 0.3 and 0.1 %, and until the
economy's whole bar is met; in the same run, KMR's published configuration (their network,
batch, mc, regime and schedule) through nk-keras to its final accuracy, and the ratios."""

import dataclasses
import os
import time

from benchmarks.speed.common import duration, release, table, with_steps

LEVELS_PCT = (1.0, 0.3, 0.1)
# The bars the shipped models are held to (README): errors in % of the reference's scale.
BARS = {"nk": dict(mean=0.1, p95=0.3, cal=0.1), "rank_zlb": dict(mean=0.3, p95=1.5)}
EVAL_SEED = 1                        # the same thetas at every evaluation, not the training seed
CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs")

# KMR's public example run (docs/models.md): 5 x 64 CELU, batch 100, mc 10, state stepping with
# 5 gradient steps per draw and 10 AR(1) steps between draws, theta redrawn every iteration,
# AdamW lr 1e-3 cosine-annealed to 1e-10 over 50,000 iterations, the plain squared residuals,
# the state and policies as they are.
KMR = dict(width=64, depth=5, activation="celu", batch=100, mc=10, regime="stepping", internal=5,
           num_steps=10, redraw_every=1, iterations=50_000, lr=1e-3, eta_min=1e-10,
           normalization="kmr", weighting="none", optimizer="adamw", seed=0)
# KMR's own PyTorch code on this machine type, to its final 0.61 / 0.32 % (X / Pi mean error).
KMR_PYTORCH_S = 1100
KMR_ROW = "nk KMR's configuration"
ZLB_ROW = "rank_zlb distill (configs/rank_zlb.flags)"


def rows(s):
  """(name, options, budget key) of every row: the train app's defaults with each regime, KMR's
  configuration, and rank_zlb with the shipped model's flags (configs/rank_zlb.flags)."""
  from nk_keras import cli, training
  # Every regime gets the default run's number of gradient steps (stepping's iterations count
  # 5 steps each, fresh's one).
  steps = training.TrainOptions().gradient_steps
  out = [(f"nk {regime}", with_steps(training.TrainOptions(regime=regime), steps), "nk")
         for regime in s["tta_regimes"]]
  out.append((KMR_ROW, training.TrainOptions(**KMR), "kmr"))
  if s["tta_rank_zlb"]:
    flagfile = os.path.join(CONFIGS, "rank_zlb.flags")
    options = cli.options_from_args(training.TrainOptions, training.CHECKS,
                                    [f"--flagfile={flagfile}"])
    out.append((ZLB_ROW, dataclasses.replace(options, distill_thetas=s["zlb_distill_thetas"]),
                "rank_zlb"))
  return out


def bar_met(bar, summary):
  return all(v <= bar[stat] for stat in bar for v in summary[stat].values())


def make_watch(points, budget_s, bar, build_s=0.0):
  """A callback measuring the policy on `points` (`accuracy.Points`) at every epoch end: the
  training time (evaluations excluded, `build_s` of building the regime included: the distill
  regime's time iteration) at which each level and the bar are first reached. Stops the run at
  the bar or when the budget (evaluations included) is spent."""
  import keras
  import numpy as np
  from nk_keras import accuracy

  class Watch(keras.callbacks.Callback):

    def on_train_begin(self, logs=None):
      self.start, self.eval_s = time.perf_counter() - build_s, 0.0
      self.trace, self.reached = [], {}

    def on_epoch_end(self, epoch, logs=None):
      now = time.perf_counter()
      train_s = now - self.start - self.eval_s
      policy = self.model.policy
      errors = points.errors(policy)                                   # [L, n, n_pol]
      names = policy.economy.policy_names
      summary = {"mean": dict(zip(names, errors.mean(axis=(0, 1)).tolist())),
                 "p95": dict(zip(names, np.percentile(errors, 95, axis=(0, 1)).tolist()))}
      if "cal" in bar:
        cal = accuracy.calibration_point(policy.economy, policy)
        summary["cal"] = {n: cal[n]["scaled_error_pct"] for n in names}
      step = int(self.model.optimizer.iterations.numpy())
      self.trace.append({"step": step, "train_s": train_s, **summary})
      worst = max(summary["mean"].values())
      hits = [(f"{level:g}", worst < level) for level in LEVELS_PCT]
      for key, hit in hits + [("bar", bar_met(bar, summary))]:
        if hit and key not in self.reached:
          self.reached[key] = {"step": step, "train_s": train_s}
      self.eval_s += time.perf_counter() - now
      if "bar" in self.reached or time.perf_counter() - self.start >= budget_s:
        self.model.stop_training = True

  return Watch()


def run(s, out):
  from nk_keras import accuracy, economies, training
  results, points = {}, {}
  for name, options, budget in rows(s):
    economy = options.economy
    if economy not in points:   # one set of reference points per economy, solved once
      points[economy] = accuracy.Points(economies.get(economy), s["eval_theta"][economy],
                                        seed=EVAL_SEED)
    budget_s = 60 * s["max_minutes"][budget]
    started = time.perf_counter()
    model = training.build_regime(options)
    build_s = time.perf_counter() - started
    watch = make_watch(points[economy], budget_s, BARS[economy], build_s=build_s)
    training.fit(model, options, steps_per_epoch=min(s["eval_every"], options.gradient_steps),
                 callbacks=[watch], verbose=False)
    last = watch.trace[-1]
    results[name] = {
        "economy": economy, "options": dataclasses.asdict(options),
        "scheduled_steps": options.gradient_steps, "steps_run": last["step"],
        "train_s": last["train_s"], "eval_s": watch.eval_s,
        "build_s": build_s, "steps_per_s": last["step"] / (last["train_s"] - build_s),
        "budget_min": s["max_minutes"][budget],
        "reached": {k: {"reached": k in watch.reached, **watch.reached.get(k, {})}
                    for k in [f"{level:g}" for level in LEVELS_PCT] + ["bar"]},
        "final": last, "trace": watch.trace}
    del model
    release()
  kmr = results[KMR_ROW]
  out["time_to_accuracy"] = {
      "eval_every": s["eval_every"], "eval_theta": s["eval_theta"], "bars": BARS,
      "budget_min": s["max_minutes"], "kmr_pytorch_s": KMR_PYTORCH_S, "rows": results,
      "kmr_final_train_s": kmr["train_s"]}

  def cell(r, key):
    hit = r["reached"][key]
    return f"{duration(hit['train_s'])} ({hit['step']:,})" if hit["reached"] else "-"

  kmr_final = max(kmr["final"]["mean"].values())

  def speedup(r):
    """How many times sooner than KMR's configuration's whole run this row is as accurate as
    that run's end (the worst policy's mean error)."""
    if r is kmr or r["economy"] != "nk":
      return ""
    hit = next((t for t in r["trace"] if max(t["mean"].values()) <= kmr_final), None)
    return f"{kmr['train_s'] / hit['train_s']:.1f}x" if hit else "not reached"

  bars = "; ".join(f"{e}: " + ", ".join(f"{k} <= {v:g}" for k, v in b.items()) + " %"
                   for e, b in BARS.items())
  budgets = ", ".join(f"{k} {duration(60 * m)}" for k, m in s["max_minutes"].items())
  print(f"\n4. Time to accuracy: training wall time (compilation and building the regime "
        f"included, evaluations excluded; gradient steps in brackets) until the mean scale-normalised error of every "
        f"policy is below each level, and until the bar is met ({bars}); thetas per evaluation: "
        f"{', '.join(f'{e} {n}' for e, n in s['eval_theta'].items())}, every {s['eval_every']} "
        f"steps; steps/s excludes building the regime; '-': not within the schedule or the budget "
        f"({budgets}). Last column: KMR's "
        f"configuration's training time over this row's time to the accuracy that configuration "
        f"ends at")
  table(["row", "steps/s"] + [f"< {level:g} %" for level in LEVELS_PCT]
        + ["bar", "final mean (%)", "to KMR's final accuracy"],
        [[name, f"{r['steps_per_s']:,.0f}"] + [cell(r, f"{level:g}") for level in LEVELS_PCT]
         + [cell(r, "bar"), " / ".join(f"{v:.3f}" for v in r["final"]["mean"].values()),
            speedup(r)]
         for name, r in results.items()])
  whole = kmr["steps_run"] == kmr["scheduled_steps"]
  print(f"KMR's configuration through nk-keras: {duration(kmr['train_s'])} for "
        f"{kmr['steps_run']:,} of its {kmr['scheduled_steps']:,} steps"
        + ("" if whole else " (stopped by the budget)")
        + f"; KMR's PyTorch code on this machine type: about {KMR_PYTORCH_S} s for all of them"
        + (f" ({KMR_PYTORCH_S / kmr['train_s']:.1f}x nk-keras's time)." if whole else "."))
