"""Time iteration: a float64 reference solution for any economy with one standard-normal state.

One-dimensional in the state by design (a grid in z): `solve` refuses economies with several
states or shocks by name. Its interface speaks the library's shapes: the economy is called with
states `[b, 1]` and innovations `[K, b, 1]`; `TimeIterationReference.policies` takes states
`[n, m, 1]` and `as_policy()` is called with `[m, 1]`. Internally the grid, `std` `[n]` and
`policies_z(z [n, m])` are one-dimensional.

For each theta the policies live on a grid uniform in `z = state / ergodic_std(theta)` on
`[-span, span]`. One iteration takes the previous iterate as tomorrow's policy (linear
interpolation in z, linear extrapolation beyond the ends), evaluates the expectation over the
innovation by Gauss-Hermite quadrature and moves today's policies by Newton on the economy's own
`equilibrium` residuals (Jacobian by autodiff). Everything is vectorised over thetas: `n` thetas
times `G` grid points are one batch of the economy.

A theta whose iteration hits `max_iter`, goes non-finite or runs away (|policy| > `bound`, in
the economy's policy units) is marked not converged (`valid` False): no stable equilibrium.
"""

import functools
import time

import numpy as np
import tensorflow as tf
from scipy import special

from nk_keras.errors import UserError
from nk_keras.reference import Reference

DTYPE = tf.float64


def hermite_normal(n_nodes):
  """Gauss-Hermite nodes and weights `[n_nodes]` for E[f(x)], x ~ N(0, 1)."""
  x, w = np.polynomial.hermite.hermgauss(n_nodes)
  return x * np.sqrt(2.0), w / np.sqrt(np.pi)


def trapezoid_normal(n_nodes, width=7.0):
  """Equally spaced nodes on [-width, width] with normal-density weights summing to one: the
  trapezoid rule, exponentially accurate for smooth integrands (the density decays fast) and
  O(h^2) at a kink (an occasionally binding constraint), where Gauss-Hermite's wide central
  spacing costs more."""
  x = np.linspace(-width, width, n_nodes)
  w = np.exp(-0.5 * x ** 2)
  return x, w / w.sum()


QUADRATURES = {"hermite": hermite_normal, "trapezoid": trapezoid_normal}


def _interp_index(z, span, n_grid):
  """Left grid index `[...]` int and weight of the right neighbour for points `z` on the uniform
  grid of `n_grid` points on [-span, span]; the weight leaves [0, 1] beyond the ends
  (linear extrapolation)."""
  u = (z + span) * ((n_grid - 1) / (2.0 * span))
  lo = np.clip(np.floor(u), 0, n_grid - 2).astype(np.int64)
  return lo, u - lo


def _solve_linear(J, F):
  """J^-1 F for `J` `[b, k, k]`, `F` `[b, k]`; small k by Cramer's rule, so a singular J gives
  non-finite values (caught as a failure) instead of an exception that would end the batch."""
  k = J.shape[-1]
  if k == 1:
    return F / J[:, :, 0]
  if k == 2:
    a, b, c, d = J[:, 0, 0], J[:, 0, 1], J[:, 1, 0], J[:, 1, 1]
    det = a * d - b * c
    return tf.stack([(d * F[:, 0] - b * F[:, 1]) / det, (a * F[:, 1] - c * F[:, 0]) / det], 1)
  return tf.linalg.solve(J, F[:, :, None])[:, :, 0]


def initial_policies(economy, state, theta):
  """Warm start `[b, n_pol]` at `state` `[b, n_state]`: the closed form, else the economy's
  first-order solution (`Economy.linear`)."""
  exact = economy.closed_form(state, theta)
  if exact is not None:
    return exact
  linear = economy.linear(theta)
  return linear.policy + tf.einsum("bps,bs->bp", linear.slopes, state - linear.state)


@functools.lru_cache(maxsize=16)
def _chunk_function(economy, n_pol, newton_steps, tol, bound, jit_compile):
  """The graph of up to `steps` iterations for thetas of any number (traced once per setting).

  Arguments: V `[n, G, n_pol]`, active/ok `[n]` bool, iters `[n]`, steps, state `[n, G]`,
  theta `[n, P]`, eps `[K]`, weights `[K]`, lo `[K, n, G]` (left neighbour of each next state
  on its theta's grid), frac `[K, n, G]` (weight of the right neighbour).
  """
  f64, i32, i64 = tf.float64, tf.int32, tf.int64
  spec = lambda rank, dtype: tf.TensorSpec([None] * rank, dtype)

  @tf.function(jit_compile=jit_compile, input_signature=[
      tf.TensorSpec([None, None, n_pol], f64), spec(1, tf.bool), spec(1, tf.bool), spec(1, i32),
      spec(0, i32),
      spec(2, f64), spec(2, f64), spec(1, f64), spec(1, f64), spec(3, i64), spec(3, f64)])
  def run_chunk(V, active, ok, iters, steps, state, theta, eps, weights, lo, frac):
    n, G = tf.shape(V)[0], tf.shape(V)[1]
    b = n * G
    state_b = tf.reshape(state, [b, 1])
    theta_b = tf.repeat(theta, G, axis=0)
    eps_b = tf.broadcast_to(eps[:, None, None], tf.stack([tf.shape(eps)[0], b, 1]))
    offset = tf.cast(tf.range(n) * G, i64)[None, :, None]
    left = tf.reshape(lo + offset, [-1, b])                                 # [K, b]
    right_w = tf.reshape(frac, [-1, b])[:, :, None]

    def body(i, V, active, ok, iters):
      Vf = tf.reshape(V, [b, n_pol])
      tomorrow = tf.gather(Vf, left) * (1 - right_w) + tf.gather(Vf, left + 1) * right_w
      X = Vf
      for _ in range(newton_steps):
        with tf.GradientTape() as tape:
          tape.watch(X)
          F = economy.equilibrium(state_b, theta_b, eps_b, X, tomorrow, weights)
        X = X - _solve_linear(tape.batch_jacobian(F, X), F)
      new = tf.reshape(X, tf.shape(V))
      change = tf.reduce_max(tf.abs(new - V), axis=[1, 2])
      finite = tf.reduce_all(tf.math.is_finite(new), axis=[1, 2])
      sane = finite & (tf.reduce_max(tf.abs(tf.where(tf.math.is_finite(new), new, 0.0)),
                                     axis=[1, 2]) <= bound)
      V = tf.where((active & sane)[:, None, None], new, V)
      iters += tf.cast(active, i32)
      ok = ok & ~(active & ~sane)
      active = active & sane & ~(change < tol)   # a NaN change keeps iterating: caught by `sane`
      return i + 1, V, active, ok, iters

    _, V, active, ok, iters = tf.while_loop(
        lambda i, V, active, *_: (i < steps) & tf.reduce_any(active), body,
        (tf.constant(0), V, active, ok, iters))
    return V, active, ok, iters

  return run_chunk


# Grid points x nodes per block (BUILD_NOTES.md, "Time iteration under XLA").
BLOCK_ELEMENTS = 300_000
N_GRID, N_NODES = 401, 40   # `solve_block`'s default grid and quadrature sizes


def solve(economy, theta, block=None, progress=False, **options):
  """Solves at every row of `theta` `[n, P]` (NumPy), `block` thetas at a time, returns one
  TimeIterationReference. `options`: those of `solve_block`. The default block holds about
  `BLOCK_ELEMENTS` grid-point-node pairs, at most 16 thetas: measured under XLA on 2 cores,
  1001 x 80 ran 1.45x faster in blocks of 4 than of 16, 301 x 60 the same in blocks of 8-24."""
  if block is None:
    size = options.get("n_grid", N_GRID) * options.get("n_nodes", N_NODES)
    block = max(1, min(16, BLOCK_ELEMENTS // size))
  from tqdm import tqdm
  one_dimensional(economy)
  started = time.perf_counter()
  theta = np.asarray(theta, np.float64).reshape(-1, economy.n_params)
  parts = []
  with tqdm(total=len(theta), desc="time iteration", unit="theta", disable=not progress,
            mininterval=2.0) as bar:
    for i in range(0, max(len(theta), 1), block):
      parts.append(solve_block(economy, theta[i:i + block], **options))
      bar.update(len(parts[-1].theta))
  if len(parts) == 1:
    return parts[0]
  return TimeIterationReference(
      economy, theta, parts[0].grid, np.concatenate([p.values for p in parts]),
      np.concatenate([p.valid for p in parts]), np.concatenate([p.iterations for p in parts]),
      seconds=time.perf_counter() - started)


def solve_block(economy, theta, n_grid=N_GRID, n_nodes=N_NODES, quadrature="trapezoid", span=5.0,
                tol=1e-10, max_iter=1500, newton_steps=1, bound=1.0, init="auto", chunk=50,
                jit_compile=True, progress=False):
  """Solves at every row of `theta` `[n, P]` (NumPy) at once; returns a TimeIterationReference.

  `init`: "auto" (closed form, linearised or zeros: `initial_policies`) or "zeros".
  `quadrature`: "trapezoid" (default) or "hermite". Measured on rank_zlb at the calibration
  (G = 401, against 400 trapezoid nodes): the ZLB kink costs Gauss-Hermite 2.6e-5 in log N at 40
  nodes and 1.3e-5 at 80 (error ~ 1/K), the trapezoid 1.4e-5 at 40 and 2.6e-6 at 80 (~ 1/K^2).
  The grid's own error is first order at the kink (linear interpolation across it): 2e-5 in
  log N at G = 401 against G = 801.
  The loop runs `chunk` iterations per graph call; between calls the thetas that are done
  (converged or failed) are dropped from the batch. Compiled with XLA by default: it fuses the
  elementwise residual, Jacobian and interpolation ops of an iteration, 1.75x faster on 2 CPU
  cores (BUILD_NOTES.md, "Time iteration under XLA"); results agree with the plain graph to
  round-off (5.6e-17 on 400 rank_zlb thetas).
  """
  one_dimensional(economy)
  started = time.perf_counter()
  theta = np.asarray(theta, np.float64).reshape(-1, economy.n_params)
  n, G, n_pol = theta.shape[0], n_grid, len(economy.policy_names)
  grid = np.linspace(-span, span, G)
  x, w = QUADRATURES[quadrature](n_nodes)
  std = economy.ergodic_std(tf.constant(theta, DTYPE)).numpy()[:, 0]        # [n]
  state = std[:, None] * grid[None, :]                                       # [n, G]
  eps = np.broadcast_to(x[:, None, None], (n_nodes, n * G, 1))
  nxt = economy.step(tf.constant(state.reshape(-1, 1)), tf.constant(np.repeat(theta, G, axis=0)),
                     tf.constant(eps), None).numpy().reshape(n_nodes, n, G)
  lo, frac = _interp_index(nxt / std[None, :, None], span, G)               # [K, n, G]

  if init == "zeros":
    V = np.zeros([n, G, n_pol])
  else:
    V = initial_policies(economy, tf.constant(state.reshape(-1, 1)),
                         tf.constant(np.repeat(theta, G, axis=0))).numpy().reshape(n, G, n_pol)
  active, ok, iters = np.ones(n, bool), np.ones(n, bool), np.zeros(n, np.int32)
  run_chunk = _chunk_function(economy, n_pol, newton_steps, float(tol), float(bound), jit_compile)
  done = 0
  while done < max_iter and active.any():
    rows = np.flatnonzero(active)
    steps = min(chunk, max_iter - done)
    out = run_chunk(V[rows], active[rows], ok[rows], iters[rows], tf.constant(steps, tf.int32),
                    tf.constant(state[rows]), tf.constant(theta[rows]), tf.constant(x),
                    tf.constant(w), tf.constant(lo[:, rows]), tf.constant(frac[:, rows]))
    V[rows], active[rows], ok[rows], iters[rows] = (t.numpy() for t in out)
    done += steps
    if progress:
      print(f"time iteration: {done} iterations, {active.sum()} of {n} thetas still iterating, "
            f"{time.perf_counter() - started:.1f} s", flush=True)
  return TimeIterationReference(economy, theta, grid, V, ok & ~active, iters,
                                seconds=time.perf_counter() - started)


def one_dimensional(economy):
  """Raises a UserError unless `economy` has one exogenous state and one shock (the grid is in
  z)."""
  if economy.n_state != 1 or economy.n_shock != 1 or economy.endogenous_states:
    raise UserError(f"time iteration is one-dimensional in the state: economy {economy.name!r} "
                    f"has {economy.n_state} state(s) and {economy.n_shock} shock(s)")


def probability_negative(z, g):
  """Probability under N(0, 1) that `g` `[..., m]`, linear between the sorted points `z` `[m]`,
  is negative: exact segment by segment (the crossing by linear interpolation), the tails
  beyond the ends by the sign there. Returns `[...]`."""
  a, b = g[..., :-1], g[..., 1:]
  with np.errstate(divide="ignore", invalid="ignore"):
    root = np.clip(z[:-1] + (z[1:] - z[:-1]) * a / (a - b), z[:-1], z[1:])
  cdf = special.ndtr
  # On each segment the negative part is [z_i, root] (a < 0 <= b), [root, z_i+1] (a >= 0 > b),
  # the whole segment or nothing.
  mass = np.where((a < 0) & (b < 0), cdf(z[1:]) - cdf(z[:-1]),
         np.where(a < 0, cdf(root) - cdf(z[:-1]),
         np.where(b < 0, cdf(z[1:]) - cdf(root), 0.0)))
  tails = (g[..., 0] < 0) * cdf(z[0]) + (g[..., -1] < 0) * cdf(-z[-1])
  return mass.sum(axis=-1) + tails


class TimeIterationReference(Reference):
  """Policies on the z grid of each theta: `values` `[n, G, n_pol]` at states
  `grid * ergodic_std(theta)`; `valid` `[n]` (converged), `iterations` `[n]`, `seconds` (the
  solve's wall time)."""

  def __init__(self, economy, theta, grid, values, valid, iterations, seconds=float("nan")):
    self.economy = economy
    self.theta = theta
    self.grid = grid
    self.values = values
    self.valid = valid
    self.iterations = iterations
    self.seconds = seconds
    self.std = economy.ergodic_std(tf.constant(theta, DTYPE)).numpy()[:, 0]  # [n]
    self.span = grid[-1]

  def policies_z(self, z):
    """Policies `[n, m, n_pol]` at `z` `[n, m]` ergodic std of each theta's state."""
    z = np.asarray(z, np.float64)
    lo, frac = _interp_index(z, self.span, len(self.grid))
    rows = np.arange(len(self.theta))[:, None]
    left, right = self.values[rows, lo], self.values[rows, lo + 1]
    return left + (right - left) * frac[..., None]

  def policies(self, state):
    """Policies `[n, m, n_pol]` (float64) at states `[n, m, 1]`, row i at theta i."""
    return self.policies_z(np.asarray(state, np.float64)[..., 0] / self.std[:, None])

  def ergodic_weights(self, n_points=4001):
    """A fine z grid `[m]` on [-span, span] and normal weights `[m]` summing to one (Simpson's
    rule on the ergodic N(0, 1) density of z), for ergodic moments of the policies."""
    z = np.linspace(-self.span, self.span, n_points | 1)
    simpson = np.ones_like(z)
    simpson[1:-1:2], simpson[2:-1:2] = 4.0, 2.0
    w = simpson * np.exp(-0.5 * z ** 2)
    return z, w / w.sum()

  def ergodic_mean(self):
    """E[policy] under the state's ergodic normal law, `[n, n_pol]`."""
    z, w = self.ergodic_weights()
    return np.einsum("m,nmj->nj", w, self.policies_z(np.broadcast_to(z, (len(self.theta), len(z)))))

  def scale(self):
    """Ergodic std of each policy, `[n, n_pol]`: the accuracy metric's denominator
    (|log f_nn - log f_ref| / sd_erg(log f_ref); policies are already in logs)."""
    return self.ergodic_std_of(lambda f: f)

  def ergodic_std_of(self, transform):
    """Ergodic std `[n, k]` of `transform(policies [n, m, n_pol]) -> [n, m, k]`."""
    z, w = self.ergodic_weights()
    f = transform(self.policies_z(np.broadcast_to(z, (len(self.theta), len(z)))))
    mean = np.einsum("m,nmj->nj", w, f)
    return np.sqrt(np.einsum("m,nmj->nj", w, (f - mean[:, None]) ** 2))

  def probability_below(self, fn):
    """Ergodic probability `[n]` that `fn(state [n, G, 1], values [n, G, n_pol]) -> [n, G]` is
    negative, with `fn` linear in the state and the policies (so piecewise linear in z):
    `probability_negative` on the grid."""
    state = (self.std[:, None] * self.grid[None])[..., None]
    return probability_negative(self.grid, fn(state, self.values))

  def as_policy(self):
    """`policy(state [m, 1], theta [m, P]) -> [m, n_pol]` (float64 tensors) for thetas among this
    reference's rows (nearest row in box units): the form networks are called in, TensorFlow
    ops throughout so that it traces inside a `tf.function` as a network does."""
    span = np.where(self.economy.box_high > self.economy.box_low,
                    self.economy.box_high - self.economy.box_low, 1.0)
    rows_theta = tf.constant(self.theta / span, DTYPE)                        # [n, P]
    std, values = tf.constant(self.std, DTYPE), tf.constant(self.values, DTYPE)
    n_grid = len(self.grid)
    def policy(state, theta):
      state, theta = tf.cast(state, DTYPE), tf.cast(theta, DTYPE)
      dist = tf.reduce_sum((theta[:, None, :] / span - rows_theta[None]) ** 2, -1)
      rows = tf.argmin(dist, axis=1)
      u = (state[:, 0] / tf.gather(std, rows) + self.span) * ((n_grid - 1) / (2.0 * self.span))
      lo = tf.cast(tf.clip_by_value(tf.floor(u), 0, n_grid - 2), tf.int64)
      frac = u - tf.cast(lo, DTYPE)
      left = tf.gather_nd(values, tf.stack([rows, lo], 1))
      right = tf.gather_nd(values, tf.stack([rows, lo + 1], 1))
      return left + (right - left) * frac[:, None]
    return policy
