"""Section 1: gradient steps/s of each regime at KMR's configuration, against KMR's PyTorch."""

from benchmarks.speed.common import (PAPER, forward_flops, release, spread, step_flops, table,
                                     timed_fit)

# Section 1 rows: name -> regime options. `fresh_ergodic` is the plain residual loss, without the
# Newton solve and the extra forward pass of our default relative weighting: its cost.
REGIME_ROWS = {"fresh": dict(regime="fresh"),
               "fresh_ergodic": dict(regime="fresh", weighting="ergodic"),
               "cached": dict(regime="cached"),
               "internal": dict(regime="internal"),
               "stepping": dict(regime="stepping")}

KMR_STEPS_PER_S = (230, 300)         # KMR's PyTorch example code on this 2-core machine

TARGET_STEPS_PER_S = 3 * KMR_STEPS_PER_S[1]


def time_regimes(s, rows):
  from nk_keras import training
  results = {}
  for name in rows:
    options = training.TrainOptions(**PAPER, **REGIME_ROWS[name])
    model, seconds, first = timed_fit(options, s["steps"], s["repeats"])
    results[name] = {"regime": options.regime, "weighting": options.weighting,
                     "steps": s["steps"], "repeats": s["repeats"],
                     "steps_per_s": spread([s["steps"] / t for t in seconds]),
                     "warmup_s": first,
                     "gflop_per_step": step_flops(options, forward_flops(model.net)) / 1e9}
    del model
    release()
  return results


def run(s, out):
  rows = time_regimes(s, REGIME_ROWS)
  out["regimes"] = {"config": {**PAPER, "steps_per_execution": 100},
                    "kmr_pytorch_steps_per_s": list(KMR_STEPS_PER_S),
                    "target_steps_per_s": TARGET_STEPS_PER_S, "rows": rows}
  lo, hi = KMR_STEPS_PER_S
  print(f"\n1. Gradient steps/s per regime: batch {PAPER['batch']}, mc {PAPER['mc']}, "
        f"{PAPER['depth']} x {PAPER['width']} {PAPER['activation'].upper()}; "
        f"{s['repeats']} repeats of {s['steps']} steps after a compiling warm-up")
  table(["regime", "weighting", "median steps/s", "min", "max", "vs KMR PyTorch",
         "warm-up (compile) s"],
        [[name, r["weighting"], f"{r['steps_per_s']['median']:,.0f}",
          f"{r['steps_per_s']['min']:,.0f}", f"{r['steps_per_s']['max']:,.0f}",
          f"{r['steps_per_s']['median'] / hi:.1f}-{r['steps_per_s']['median'] / lo:.1f}x",
          f"{r['warmup_s']:.1f}"] for name, r in rows.items()])
  print(f"KMR's PyTorch code: {lo}-{hi} steps/s on this machine; target >= "
        f"{TARGET_STEPS_PER_S} steps/s (3x).")
  cost = 1 - rows["fresh"]["steps_per_s"]["median"] / rows["fresh_ergodic"]["steps_per_s"]["median"]
  out["regimes"]["relative_weighting_cost"] = cost
  print(f"fresh_ergodic is the plain residual loss (no Newton solve, no forward pass at one "
        f"ergodic std): the relative weighting costs {100 * cost:.0f} % of fresh's steps/s.")

