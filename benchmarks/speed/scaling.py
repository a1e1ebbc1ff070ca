"""Section 3: steps/s and samples/s over batch x mc (fresh regime, default network)."""

from benchmarks.speed.common import forward_flops, release, spread, step_flops, table, timed_fit


def grid_steps(points, budget, cap):
  """Gradient steps per timed repeat: about `budget` network points, whole compiled calls of
  100 above 100 steps, at least 2."""
  steps = budget // points
  if steps >= 100:
    return min(cap, steps // 100 * 100)
  return max(2, steps)


def run(s, out):
  from nk_keras import training
  batches, mcs = s["grid"]
  rows = []
  for batch in batches:
    for mc in mcs:
      # AdamW: the network's throughput, without SOAP's fixed cost per step.
      options = training.TrainOptions(regime="fresh", batch=batch, mc=mc, optimizer="adamw")
      steps = grid_steps(batch * (1 + mc), s["scaling_points"], cap=max(s["steps"], 2000))
      model, seconds, _ = timed_fit(options, steps, s["scaling_repeats"])
      rate = spread([steps / t for t in seconds])["median"]
      rows.append({"batch": batch, "mc": mc, "steps": steps, "steps_per_s": rate,
                   "samples_per_s": batch * rate, "points_per_s": batch * (1 + mc) * rate,
                   "gflops": step_flops(options, forward_flops(model.net)) * rate / 1e9})
      del model
      release()
  d = training.TrainOptions()
  out["scaling"] = {"config": {"regime": "fresh", "width": d.width, "depth": d.depth,
                               "activation": d.activation, "weighting": d.weighting},
                    "rows": rows}
  print(f"\n3. Scaling (fresh, {d.depth} x {d.width} {d.activation}, {d.weighting} weighting); "
        f"samples = batch points, points = batch * (1 + mc) network evaluations")
  table(["batch", "mc", "steps timed", "steps/s", "samples/s", "points/s", "GFLOP/s"],
        [[r["batch"], r["mc"], r["steps"], f"{r['steps_per_s']:,.1f}",
          f"{r['samples_per_s']:,.0f}", f"{r['points_per_s']:,.0f}", f"{r['gflops']:.1f}"]
         for r in rows])

