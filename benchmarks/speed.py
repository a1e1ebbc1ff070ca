"""Speed of training and serving, on this machine, in five sections:

  1 regimes           gradient steps/s of each regime at KMR's configuration (batch 100, mc 10,
                      5 x 64 CELU), against KMR's PyTorch code on the same machine
  2 flops             achieved matmul FLOP/s of a gradient step against the measured matmul peak
  3 scaling           steps/s and samples/s over batch x mc (fresh regime, default network)
  4 time_to_accuracy  wall time until the mean scale-normalised error of X and Pi is below 1 %
                      and 0.2 % (the shipped schedules of `stepping` and `fresh`, stopped early)
  5 serving           evaluations/s of an exported SavedModel against the closed form in NumPy

  python -m benchmarks.speed                     # all sections, under 10 min on 2 cores
  python -m benchmarks.speed --sections=1,2      # a subset
  python -m benchmarks.speed --smoke             # every section at tiny sizes, about a minute (CI)

Prints one table per section and writes every figure to --out (JSON, rewritten after each
section). Timings are wall clock: other processes on the cores lower them, so the load average
before and after is recorded with the figures.
"""

from nk_keras import cli  # first: silences TensorFlow's native start-up lines

import dataclasses
import gc
import json
import math
import os
import statistics
import tempfile
import time

from absl import flags
import numpy as np

FLAGS = flags.FLAGS
SECTIONS = {1: "regimes", 2: "flops", 3: "scaling", 4: "time_to_accuracy", 5: "serving"}

flags.DEFINE_list("sections", [str(s) for s in SECTIONS],
                  "Sections to run: " + ", ".join(f"{k} {v}" for k, v in SECTIONS.items()) + ".")
flags.DEFINE_bool("smoke", False, "Every section at tiny sizes, in about a minute (CI); flags "
                  "given explicitly still win over the smoke sizes.")
flags.DEFINE_string("out", "benchmarks/results.json", "JSON file of every figure.")
flags.DEFINE_integer("steps", 2000, "Gradient steps per timed repeat in section 1 (a multiple "
                     "of 100: whole compiled calls).", lower_bound=100)
flags.DEFINE_integer("repeats", 3, "Timed repeats per configuration in sections 1 and 2 "
                     "(median, min, max).", lower_bound=1)
flags.DEFINE_integer("scaling_points", 1_000_000, "Network points, batch * (1 + mc), per timed "
                     "repeat in section 3: fewer steps for the larger configurations.",
                     lower_bound=1)
flags.DEFINE_float("max_minutes", 3.0, "Wall-time budget per regime in section 4, evaluations "
                   "included (so it bounds the section); reported times exclude evaluations.",
                   lower_bound=0.0)
flags.DEFINE_integer("schedule_steps", 30_000, "Gradient steps of the learning-rate schedule in "
                     "section 4: the shipped models' cosine schedule, compressed to a run that "
                     "fits the budget (a multiple of 100).", lower_bound=100)
flags.DEFINE_integer("eval_every", 1000, "Gradient steps between accuracy evaluations in "
                     "section 4 (below 100 or a multiple of 100).", lower_bound=1)
flags.DEFINE_integer("eval_theta", 2000, "Theta draws per accuracy evaluation in section 4.",
                     lower_bound=100)
flags.DEFINE_integer("serve_batch", 100_000, "Points per served-policy call in section 5.",
                     lower_bound=1)
flags.DEFINE_integer("matmul_size", 2048, "Side of the large square matmul that measures the "
                     "peak in section 2.", lower_bound=1)

flags.register_validator("steps", lambda v: v % 100 == 0, "--steps must be a multiple of 100")
flags.register_validator("schedule_steps", lambda v: v % 100 == 0,
                         "--schedule_steps must be a multiple of 100")
flags.register_validator("eval_every", lambda v: v < 100 or v % 100 == 0,
                         "--eval_every must be below 100 or a multiple of 100")

# `--smoke`: seconds per section (most of it compilation), every code path still taken.
SMOKE = dict(steps=200, repeats=2, scaling_points=100_000, max_minutes=5 / 60, eval_every=100,
             eval_theta=500, serve_batch=10_000, matmul_size=512, schedule_steps=1000)
# KMR's configuration (docs/models.md, "The method in one paragraph"); the rest of TrainOptions stays at our defaults.
PAPER = dict(width=64, depth=5, activation="celu", batch=100, mc=10)
# Section 1 rows: name -> regime options. `fresh_ergodic` is the plain residual loss, without the
# Newton solve and the extra forward pass of our default relative weighting: its cost.
REGIME_ROWS = {"fresh": dict(regime="fresh"),
               "fresh_ergodic": dict(regime="fresh", weighting="ergodic"),
               "cached": dict(regime="cached"),
               "internal": dict(regime="internal"),
               "stepping": dict(regime="stepping")}
KMR_STEPS_PER_S = (230, 300)         # KMR's PyTorch example code on this 2-core machine
TARGET_STEPS_PER_S = 3 * KMR_STEPS_PER_S[1]
# Section 4: the shipped models' options (as in their metadata; their schedule length is
# replaced by --schedule_steps), other options at the defaults. `cached` is the fastest regime,
# per gradient step and to accuracy.
SHIPPED = {"stepping": dict(regime="stepping", internal=5, num_steps=10, redraw_every=1, seed=0),
           "cached": dict(regime="cached", pool=200_000, seed=0)}
THRESHOLDS_PCT = (1.0, 0.2)
EVAL_SEED = 1                        # the same thetas at every evaluation, not the training seed
# Calibration, zeta = 0.01 (docs/models.md, "Closed form"): the closed form's check point.
CHECK_POINT = {"X": 0.002992, "Pi": 0.008504}


def settings():
  """Sizes from the flags, or the smoke sizes for flags not given explicitly."""
  s = {name: FLAGS[name].value for name in SMOKE}
  if FLAGS.smoke:
    s.update({k: v for k, v in SMOKE.items() if not FLAGS[k].present})
  s["grid"] = ((100, 1000), (2,)) if FLAGS.smoke else ((100, 1000, 10_000), (2, 10, 50))
  s["scaling_repeats"] = 1            # after a warm-up: keeps section 3 near a minute
  s["chain"] = 100 if FLAGS.smoke else 500      # network-shaped matmuls per compiled call
  return s


# --- helpers -------------------------------------------------------------------------------


def table(headers, rows):
  """Prints `rows` under `headers`: first column left-aligned, the others right-aligned."""
  cells = [list(headers)] + [[str(c) for c in row] for row in rows]
  widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
  fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                              for i, (c, w) in enumerate(zip(row, widths)))
  print(fmt(cells[0]))
  print("  ".join("-" * w for w in widths))
  for row in cells[1:]:
    print(fmt(row))


def spread(rates):
  """Median, min and max of a list of rates."""
  return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def duration(seconds):
  return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def with_steps(options, steps):
  """`options` whose schedule is exactly `steps` gradient steps."""
  per_iteration = dataclasses.replace(options, iterations=1).gradient_steps
  if steps % per_iteration:
    raise ValueError(f"{steps} steps is not a whole number of iterations of {per_iteration}")
  return dataclasses.replace(options, iterations=steps // per_iteration)


def release():
  """Drops the previous configuration's model and compiled functions before the next one."""
  import keras
  keras.backend.clear_session()
  gc.collect()


def make_clock():
  """A callback holding the seconds of its last `fit`, from train begin to train end (so
  without `fit`'s data-adapter set-up)."""
  import keras

  class Clock(keras.callbacks.Callback):
    seconds = None

    def on_train_begin(self, logs=None):
      self.start = time.perf_counter()

    def on_train_end(self, logs=None):
      self.seconds = time.perf_counter() - self.start

  return Clock()


def timed_fit(options, steps, repeats):
  """Builds the regime, compiles it with one warm-up `fit`, then times `repeats` fits of `steps`
  gradient steps. Returns (model, seconds per repeat, seconds of the warm-up call)."""
  from nk_keras import training
  model = training.build_regime(with_steps(options, steps))
  clock = make_clock()
  # Same steps per compiled call as the timed fits (fit takes min(steps_per_execution, epoch)),
  # so the warm-up compiles the very function that is timed.
  warm = min(steps, options.steps_per_execution)
  training.fit(model, with_steps(options, warm), steps_per_epoch=warm, callbacks=[clock],
               verbose=False)
  first = clock.seconds
  seconds = []
  for _ in range(repeats):
    training.fit(model, with_steps(options, steps), steps_per_epoch=steps, callbacks=[clock],
                 verbose=False)
    seconds.append(clock.seconds)
  return model, seconds, first


def forward_flops(net):
  """Matmul FLOPs of one forward pass of one point: 2 * sum(fan_in * fan_out) over Dense layers
  (for our default normalisation: 9 inputs, 4 outputs, level and slope of X and Pi)."""
  import keras
  return 2 * sum(int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
                 for layer in net.layers if isinstance(layer, keras.layers.Dense))


def step_flops(options, forward):
  """Network matmul FLOPs of one gradient step: today's and the mc tomorrows' points forward
  and backward (backward = 2 x forward), plus one forward pass per point at one ergodic std
  when the weighting is relative (under stop_gradient)."""
  with_grad = options.batch * (1 + options.mc)
  forward_only = options.batch if options.weighting == "relative" else 0
  return (3 * with_grad + forward_only) * forward


# --- 1. gradient steps/s per regime ----------------------------------------------------------


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


def section_regimes(s, out):
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


# --- 2. FLOP/s against the matmul peak -------------------------------------------------------


def matmul_gflops(m, k, n, chain, repeats):
  """GFLOP/s of `[m, k] @ [k, n]` in one XLA-compiled call doing `chain` dependent products
  (so per-call dispatch does not count); median of `repeats` calls after a warm-up."""
  import tensorflow as tf
  rng = np.random.default_rng(0)
  x = tf.constant(rng.standard_normal((m, k)), tf.float32)
  if chain > 1:
    # Orthogonal: x keeps its norm over the chain (no overflow, no slow denormals).
    w = tf.constant(np.linalg.qr(rng.standard_normal((k, n)))[0], tf.float32)
  else:
    w = tf.constant(rng.standard_normal((k, n)) / math.sqrt(k), tf.float32)

  @tf.function(jit_compile=True)
  def products(x, w, chain):
    # A While loop: XLA cannot reassociate the chain into cheaper (w @ w) products.
    for _ in tf.range(chain):
      x = tf.matmul(x, w)
    return tf.reduce_sum(x)                             # a scalar result: no large copy out

  chain_t = tf.constant(chain)
  products(x, w, chain_t).numpy()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    products(x, w, chain_t).numpy()
    seconds.append(time.perf_counter() - start)
  return 2.0 * m * k * n * chain / statistics.median(seconds) / 1e9


def section_flops(s, out):
  rows = out.get("regimes", {}).get("rows")
  if rows is None:                                      # section 1 not run: time fresh here
    rows = time_regimes(s, ["fresh", "fresh_ergodic"])
  points = PAPER["batch"] * (1 + PAPER["mc"])
  width, size = PAPER["width"], s["matmul_size"]
  net_peak = matmul_gflops(points, width, width, s["chain"], max(3, s["repeats"]))
  large_peak = matmul_gflops(size, size, size, 1, max(3, s["repeats"]))
  achieved = {name: r["gflop_per_step"] * r["steps_per_s"]["median"] for name, r in rows.items()}
  out["flops"] = {
      "matmul_peak_gflops": {f"network_{points}x{width}@{width}x{width}": net_peak,
                             f"large_{size}x{size}@{size}x{size}": large_peak},
      "rows": {name: {"gflop_per_step": r["gflop_per_step"],
                      "steps_per_s": r["steps_per_s"]["median"],
                      "achieved_gflops": achieved[name],
                      "fraction_of_large_peak": achieved[name] / large_peak,
                      "fraction_of_network_peak": achieved[name] / net_peak}
               for name, r in rows.items()}}
  print(f"\n2. Achieved network-matmul FLOP/s of a gradient step (batch {PAPER['batch']}, "
        f"mc {PAPER['mc']}, {PAPER['depth']} x {width})")
  table(["regime", "MFLOP/step", "steps/s", "GFLOP/s", "of large peak", "of network peak"],
        [[name, f"{r['gflop_per_step'] * 1e3:.1f}", f"{r['steps_per_s']:,.0f}",
          f"{r['achieved_gflops']:.1f}", f"{100 * r['fraction_of_large_peak']:.0f} %",
          f"{100 * r['fraction_of_network_peak']:.0f} %"]
         for name, r in out["flops"]["rows"].items()])
  print(f"matmul peak (XLA, this run): {net_peak:.1f} GFLOP/s network-shaped "
        f"({points} x {width} @ {width} x {width}), {large_peak:.1f} GFLOP/s large "
        f"({size}^2 @ {size}^2)")
  share = out["flops"]["rows"]["fresh"]["fraction_of_network_peak"]
  print(f"limits: at the network-shaped peak the matmuls would take {100 * share:.0f} % of a "
        f"fresh step; the rest is elementwise work (activations, residual and Newton algebra, "
        f"AdamW), per-step overhead and matrices too small to use the cores as the large "
        f"matmul does.")


# --- 3. scaling in batch and mc --------------------------------------------------------------


def grid_steps(points, budget, cap):
  """Gradient steps per timed repeat: about `budget` network points, whole compiled calls of
  100 above 100 steps, at least 2."""
  steps = budget // points
  if steps >= 100:
    return min(cap, steps // 100 * 100)
  return max(2, steps)


def section_scaling(s, out):
  from nk_keras import training
  batches, mcs = s["grid"]
  rows = []
  for batch in batches:
    for mc in mcs:
      options = training.TrainOptions(regime="fresh", batch=batch, mc=mc)
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


# --- 4. time to accuracy ---------------------------------------------------------------------


def make_accuracy_watch(budget_s, n_theta):
  """A callback evaluating the policy at every epoch end, recording the training time (without
  evaluations) at which both mean errors first drop below each threshold, and stopping the run
  at the last threshold or when the budget is spent."""
  import keras
  from nk_keras import accuracy

  class Watch(keras.callbacks.Callback):

    def on_train_begin(self, logs=None):
      self.start, self.eval_s = time.perf_counter(), 0.0
      self.trace, self.reached = [], {}

    def on_epoch_end(self, epoch, logs=None):
      now = time.perf_counter()
      train_s = now - self.start - self.eval_s
      # mc=2: the residual statistics of the report are not used here; errors need no shocks.
      report = accuracy.evaluate(self.model.economy, self.model.policy, n_theta=n_theta,
                                 seed=EVAL_SEED, mc=2)
      errors = {n: v["mean"] for n, v in report["errors_pct"].items()}
      step = int(self.model.optimizer.iterations.numpy())
      self.trace.append({"step": step, "train_s": train_s, **errors})
      for threshold in THRESHOLDS_PCT:
        if threshold not in self.reached and max(errors.values()) < threshold:
          self.reached[threshold] = {"step": step, "train_s": train_s}
      self.eval_s += time.perf_counter() - now
      # The budget counts evaluations too: it bounds the benchmark's run time.
      if min(THRESHOLDS_PCT) in self.reached or time.perf_counter() - self.start >= budget_s:
        self.model.stop_training = True

  return Watch()


def section_time_to_accuracy(s, out):
  from nk_keras import training
  budget_s = 60 * s["max_minutes"]
  results = {}
  for name, shipped in SHIPPED.items():
    options = with_steps(training.TrainOptions(**shipped), s["schedule_steps"])
    model = training.build_regime(options)
    watch = make_accuracy_watch(budget_s, s["eval_theta"])
    training.fit(model, options, steps_per_epoch=s["eval_every"], callbacks=[watch],
                 verbose=False)
    trace = watch.trace
    best = min(trace, key=lambda t: max(t["X"], t["Pi"]))
    last = trace[-1]
    results[name] = {
        "options": dataclasses.asdict(options), "scheduled_steps": options.gradient_steps,
        "steps_run": last["step"], "train_s": last["train_s"], "eval_s": watch.eval_s,
        "steps_per_s": last["step"] / last["train_s"], "budget_min": s["max_minutes"],
        "thresholds_pct": {f"{t:g}": {"reached": t in watch.reached, **watch.reached.get(t, {})}
                           for t in THRESHOLDS_PCT},
        "best": best, "trace": trace}
    del model
    release()
  out["time_to_accuracy"] = {"eval_every": s["eval_every"], "eval_theta": s["eval_theta"],
                             "budget_min_per_regime": s["max_minutes"], "rows": results}

  def cell(r, t):
    hit = r["thresholds_pct"][f"{t:g}"]
    if hit["reached"]:
      return f"{duration(hit['train_s'])} (step {hit['step']:,})"
    return f"not reached in {duration(60 * r['budget_min'])}"

  print(f"\n4. Time to accuracy (shipped options, cosine schedule over "
        f"{s['schedule_steps']:,} gradient steps, stopped at 0.2 % or the budget; mean "
        f"scale-normalised error of X and Pi on {s['eval_theta']} thetas every "
        f"{s['eval_every']} steps; training time incl. compilation, evaluations excluded)")
  table(["regime", "steps run / scheduled", "steps/s"]
        + [f"both < {t:g} %" for t in THRESHOLDS_PCT] + ["best mean X / Pi (step)"],
        [[name, f"{r['steps_run']:,} / {r['scheduled_steps']:,}", f"{r['steps_per_s']:,.0f}"]
         + [cell(r, t) for t in THRESHOLDS_PCT]
         + [f"{r['best']['X']:.3f} / {r['best']['Pi']:.3f} % ({r['best']['step']:,})"]
         for name, r in results.items()])


# --- 5. served policy ------------------------------------------------------------------------


def closed_form_np(zeta, beta, sigma, eta, phi, phi_pi, phi_y, rho_a, sigma_a):
  """docs/models.md's "Closed form" in NumPy: X = a * zeta, Pi = b * zeta, every argument `[n]`."""
  kappa = (1 - phi) * (1 - phi * beta) * (sigma + eta) / phi
  d = (sigma * (1 - rho_a) + phi_y) * (1 - beta * rho_a) + kappa * (phi_pi - rho_a)
  return {"X": (1 - beta * rho_a) / d * zeta, "Pi": kappa / d * zeta}


def serving_inputs(economy, n, seed=0):
  """`n` points: theta uniform on the box, zeta drawn from its ergodic distribution; a dict of
  float32 `[n]` arrays named as the serving signature's inputs."""
  rng = np.random.default_rng(seed)
  theta = rng.uniform(economy.box_low, economy.box_high, (n, economy.n_params))
  p = dict(zip(economy.param_names, theta.T))
  omega = (1 + p["eta"]) / (p["sigma"] + p["eta"])
  std = np.abs(p["sigma_a"] * p["sigma"] * (p["rho_a"] - 1) * omega) / np.sqrt(1 - p["rho_a"] ** 2)
  feeds = {economy.state_names[0]: std * rng.standard_normal(n)}
  feeds.update(p)
  return {k: v.astype(np.float32) for k, v in feeds.items()}


def median_rate(fn, n, repeats):
  """Evaluations/s of `fn()` over `n` points: median of `repeats` calls after two warm-ups."""
  fn(), fn()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    seconds.append(time.perf_counter() - start)
  return n / statistics.median(seconds)


def section_serving(s, out):
  import tensorflow as tf
  from nk_keras import economies, export, training
  from nk_keras.network import ExtendedPolicy
  d = training.TrainOptions()
  economy = economies.get("nk")
  check = closed_form_np(np.float64(0.01), *economy.calibration)
  for name, value in CHECK_POINT.items():
    if abs(check[name] - value) > 5e-7:
      raise AssertionError(f"NumPy closed form {name} = {check[name]:.6f}, expected {value}")
  policy = ExtendedPolicy.create(economy, d.normalization, seed=0, width=d.width, depth=d.depth,
                                 activation=d.activation)
  n, repeats = s["serve_batch"], max(5, s["repeats"])
  inputs = serving_inputs(economy, n)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "saved_model")
    export.export(policy, path, {"regime": "untrained (benchmark)"})
    start = time.perf_counter()
    serve = tf.saved_model.load(path).signatures["serving_default"]
    load_s = time.perf_counter() - start
    feeds = {k: tf.constant(v) for k, v in inputs.items()}
    served = median_rate(lambda: serve(**feeds), n, repeats)
  numpy_rate = median_rate(lambda: closed_form_np(**inputs), n, repeats)
  out["serving"] = {"batch": n, "repeats": repeats, "network": f"{d.depth}x{d.width} "
                    f"{d.activation}, {d.normalization}", "load_s": load_s,
                    "saved_model_evals_per_s": served, "numpy_closed_form_evals_per_s": numpy_rate,
                    "closed_form_check": {k: float(v) for k, v in check.items()}}
  print(f"\n5. Served policy throughput (batch {n:,}, median of {repeats}; one evaluation = X "
        f"and Pi at one point)")
  table(["function", "evaluations/s", "ms per call"],
        [["SavedModel serving_default", f"{served:,.0f}", f"{1e3 * n / served:.2f}"],
         ["closed form, NumPy", f"{numpy_rate:,.0f}", f"{1e3 * n / numpy_rate:.2f}"]])
  print(f"SavedModel load {load_s:.2f} s; closed-form check at the calibration, zeta = 0.01: "
        f"X {check['X']:.6f}, Pi {check['Pi']:.6f}")


# --- driver ----------------------------------------------------------------------------------


RUNNERS = {1: section_regimes, 2: section_flops, 3: section_scaling,
           4: section_time_to_accuracy, 5: section_serving}


def chosen_sections():
  try:
    chosen = sorted({int(v) for v in FLAGS.sections})
  except ValueError:
    chosen = None
  if not chosen or any(v not in SECTIONS for v in chosen):
    raise cli.UsageError(f"--sections must list numbers among {', '.join(map(str, SECTIONS))}, "
                         f"got {','.join(FLAGS.sections)!r}")
  return chosen


def write(out, path):
  with open(path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  sections = chosen_sections()
  # Every configuration traces its own train function; TF's retracing warning says nothing here.
  import tensorflow as tf
  from absl import logging
  tf.get_logger().setLevel("ERROR")
  logging.set_verbosity(logging.ERROR)
  cli.writable_dir(os.path.dirname(os.path.abspath(FLAGS.out)))
  from nk_keras import export
  s = settings()
  load = os.getloadavg()[0]
  out = {"meta": {"smoke": FLAGS.smoke, "sections": [SECTIONS[k] for k in sections],
                  "settings": s, "cpu_count": os.cpu_count(), "load_average_start": load,
                  "versions": export.versions(), "git_commit": export.git_commit(),
                  "date": time.strftime("%Y-%m-%d %H:%M:%S")}}
  print(f"benchmark{' (smoke)' if FLAGS.smoke else ''}: sections "
        f"{', '.join(SECTIONS[k] for k in sections)}; {os.cpu_count()} CPUs, "
        f"load average {load:.2f}")
  if load > 0.5:
    print("note: other processes are using the CPUs; figures are lower than on an idle machine")
  start = time.perf_counter()
  for k in sections:
    RUNNERS[k](s, out)
    out["meta"]["load_average_end"] = os.getloadavg()[0]
    out["meta"]["total_s"] = time.perf_counter() - start
    write(out, FLAGS.out)                               # a stopped run keeps its sections
  print(f"\ntotal {duration(out['meta']['total_s'])}; results in {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
