"""Time iteration in N dimensions: a float64 reference for any economy with any number of states
and shocks, endogenous states included.

For each theta the policies live on a tensor grid of the states, `n_grid[d]` points uniform on
+-`span[d]` ergodic std of state d around the deterministic steady state, both from the
economy's first-order perturbation (`economy.linear`). One iteration takes the previous iterate
as tomorrow's policy (multilinear interpolation on the grid, linear extrapolation beyond its
faces), takes expectations over the innovations by a product quadrature rule and moves today's
policies by one Newton step on the economy's own `equilibrium` residuals. Tomorrow's state is
computed inside the gradient tape from today's policies, so for an endogenous state the
Jacobian includes the derivative of the interpolated tomorrow policy through tomorrow's state.
The iteration starts from the perturbation's linear policy. Everything is vectorised over
thetas (`n` thetas times `G` grid points are one batch of the economy) and runs `chunk`
iterations per XLA-compiled graph call.

A theta is marked not converged (`valid` False: no stable equilibrium) when its perturbation has
no stable solution, or its iteration hits `max_iter`, goes non-finite or runs away (|policy| >
`bound`, in the economy's policy units).

Accuracy is the grid's: on rank_zlb_inertia (6 thetas with an equilibrium, errors in % of each
policy's ergodic std, mean over ergodic states, against 29 x 9 x 29 points and 21 x 7 nodes)
the default 15 x 7 x 15 linear grid is off by 1.2 (N) and 6.9 (Pi), 21 x 7 x 21 by 0.5 and 2.6
(about h^2), 15 x 11 x 15 by 0.9 and 5.3; more nodes barely matter (21 x 7: 6.6). Cubic
interpolation (`order=3`) converges faster (11 x 5 x 11 and 15 x 7 x 15 differ by 0.5 and 1.2)
at about six times the cost per grid point. Inflation's ergodic std is a small number (about
0.1 % a quarter), and the ZLB's deflationary bias, which sets inflation's level, is an
expectation over the kink that a coarse grid blurs (BUILD_NOTES.md, "Bring your own model").

Shapes: thetas `[n, P]`, states `[..., S]`, innovations `[Q, b, K]` (Q quadrature nodes of the K
shocks), policies `[..., n_pol]`; a grid of `G = prod(n_grid)` points is flattened in C order
(the first state varies slowest).
"""

import functools
import itertools
import time

import numpy as np
import tensorflow as tf

from nk_keras.errors import UserError
from nk_keras.perturbation import solve as solve_small
from nk_keras.reference import Reference
from nk_keras.reference.time_iteration import QUADRATURES

DTYPE = tf.float64
BLOCK_ELEMENTS = 300_000   # grid points x nodes per block of thetas, as the 1-D solver's


def per_state(value, n, what):
  """`value` (one number or one per state) as a tuple of `n`."""
  values = (value,) * n if np.ndim(value) == 0 else tuple(value)
  if len(values) != n:
    raise UserError(f"{what}: {len(values)} values for {n} states or shocks")
  return values


def product_quadrature(n_nodes, quadrature):
  """Nodes `[Q, K]` and weights `[Q]` (summing to one) for E[f(eps)], eps ~ N(0, I_K): the
  product of the one-dimensional rule `quadrature` with `n_nodes[k]` nodes for shock k."""
  rules = [QUADRATURES[quadrature](n) for n in n_nodes]
  nodes = np.array(list(itertools.product(*[x for x, _ in rules])))
  weights = np.prod(np.array(list(itertools.product(*[w for _, w in rules]))), axis=1)
  return nodes.reshape(-1, len(n_nodes)), weights


def stencil(u, n, order):
  """Along one grid axis of `n` points, at positions `u` (in grid steps from the first point):
  the first point of each position's stencil `[...]` (int64) and the stencil's weights, a list
  of `order + 1` tensors `[...]`.

  `order` 1: linear in the position's cell. `order` 3: Catmull-Rom's cubic through the cell's
  two points and one neighbour on each side (third-order accurate, continuously
  differentiable), linear in the first and last cells. Beyond the grid, linear extrapolation
  from the outermost cell either way."""
  # The cell is piecewise constant in the point: its index carries no derivative. A
  # non-finite point takes cell 0 (an index must be valid) and gives a non-finite value.
  finite = tf.where(tf.math.is_finite(u), u, 0.0)
  lo = tf.stop_gradient(tf.clip_by_value(tf.floor(finite), 0.0, n - 2.0))
  t = u - lo
  if order == 1:
    return tf.cast(lo, tf.int64), [1.0 - t, t]
  first = tf.clip_by_value(lo - 1.0, 0.0, n - 4.0)
  slot = lo - first                               # the cell's left point in the stencil: 0-2
  cubic = [((2.0 - t) * t - 1.0) * t / 2.0, ((3.0 * t - 5.0) * t * t + 2.0) / 2.0,
           ((4.0 - 3.0 * t) * t + 1.0) * t / 2.0, (t - 1.0) * t * t / 2.0]
  inner = tf.equal(slot, 1.0)
  zero = tf.zeros_like(t)
  linear = [tf.where(tf.equal(slot, j), 1.0 - t, zero) + tf.where(tf.equal(slot, j - 1), t, zero)
            for j in range(4)]
  return tf.cast(first, tf.int64), [tf.where(inner, c, l) for c, l in zip(cubic, linear)]


def interpolate(values, points, offset, center, std, shape, span, order=1):
  """Tensor-product interpolation of grid values (`stencil`'s `order` along every axis),
  linear extrapolation beyond the grid's faces.

  `values` `[R, n_pol]`: the grids of several thetas stacked (rows `offset[i]` to
  `offset[i] + G`); `points` `[..., b, S]` states; `offset` `[b]` int64, `center`, `std`
  `[b, S]` the grid of each point's theta; `shape` (n_grid per state) and `span` static.
  Returns `[..., b, n_pol]`, differentiable in `points`.
  """
  strides = np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]
  base = offset
  weights = []
  for d, (n_d, span_d) in enumerate(zip(shape, span)):
    u = ((points[..., d] - center[:, d]) / std[:, d] + span_d) * ((n_d - 1) / (2.0 * span_d))
    first, w = stencil(u, n_d, order)
    base = base + first * int(strides[d])
    weights.append(w)
  out = 0.0
  for corner in itertools.product(range(order + 1), repeat=len(shape)):
    index = base + int(np.dot(corner, strides))
    weight = functools.reduce(lambda a, b: a * b, [w[c] for w, c in zip(weights, corner)])
    out = out + weight[..., None] * tf.gather(values, index)
  return out


def newton_step(economy, X, V, state, theta, eps, weights, offset, center, std, shape, span,
                order):
  """One Newton step on today's policies `X` `[b, n_pol]` at `state` `[b, S]`, tomorrow's policy
  interpolated from `V` (`interpolate`'s `values`) at `step(state, theta, eps, X)` for the
  nodes `eps` `[Q, b, K]`. Returns `(X_new, residuals at X)` `[b, n_pol]` each."""
  endogenous = bool(economy.endogenous_states)
  # A copy: the caller may pass the same tensor as `V`, which must not get X's tangent.
  X = tf.identity(X)
  if not endogenous:
    tomorrow = interpolate(V, economy.step(state, theta, eps, None), offset, center, std, shape,
                           span, order)
  with tf.GradientTape() as tape:
    tape.watch(X)
    if endogenous:
      tomorrow = interpolate(V, economy.step(state, theta, eps, X), offset, center, std, shape,
                             span, order)
    F = economy.equilibrium(state, theta, eps, X, tomorrow, weights)
  step = solve_small(tape.batch_jacobian(F, X), F[:, :, None])[:, :, 0]
  return X - step, F


@functools.lru_cache(maxsize=16)
def _chunk_function(economy, n_pol, shape, span, order, tol, bound, jit_compile):
  """The graph of up to `steps` iterations for thetas of any number (traced once per setting).

  Arguments: V `[n, G, n_pol]`, active/ok `[n]` bool, iters `[n]`, steps, state `[n, G, S]`,
  theta `[n, P]`, center, std `[n, S]`, nodes `[Q, K]`, weights `[Q]`.
  """
  f64, i32 = tf.float64, tf.int32
  S = len(shape)
  spec = lambda rank, dtype: tf.TensorSpec([None] * rank, dtype)

  @tf.function(jit_compile=jit_compile, input_signature=[
      tf.TensorSpec([None, None, n_pol], f64), spec(1, tf.bool), spec(1, tf.bool), spec(1, i32),
      spec(0, i32), tf.TensorSpec([None, None, S], f64), spec(2, f64), spec(2, f64),
      spec(2, f64), tf.TensorSpec([None, economy.n_shock], f64), spec(1, f64)])
  def run_chunk(V, active, ok, iters, steps, state, theta, center, std, nodes, weights):
    n, G = tf.shape(V)[0], tf.shape(V)[1]
    b = n * G
    state_b = tf.reshape(state, [b, S])
    theta_b, center_b, std_b = (tf.repeat(t, G, axis=0) for t in (theta, center, std))
    offset = tf.repeat(tf.cast(tf.range(n) * G, tf.int64), G)
    eps = tf.broadcast_to(nodes[:, None, :], tf.stack([tf.shape(nodes)[0], b, economy.n_shock]))

    def body(i, V, active, ok, iters):
      Vf = tf.reshape(V, [b, n_pol])
      X, _ = newton_step(economy, Vf, Vf, state_b, theta_b, eps, weights, offset, center_b,
                         std_b, shape, span, order)
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


def grid_points(shape, span):
  """The grid in ergodic std, `[G, S]` (C order)."""
  axes = [np.linspace(-s, s, n) for n, s in zip(shape, span)]
  return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(shape))


def perturbation(economy, theta):
  """`(center [n, S], std [n, S], policy [n, n_pol], slopes [n, n_pol, S], stable [n])` of the
  first-order perturbation at `theta` `[n, P]`: stable where it is finite, every state moves
  (std > 0) and the states' linear law is stationary."""
  linear = economy.linear(tf.constant(theta, DTYPE))
  center, policy, slopes = linear.state.numpy(), linear.policy.numpy(), linear.slopes.numpy()
  std = np.sqrt(np.abs(np.diagonal(linear.covariance.numpy(), axis1=1, axis2=2)))
  transition = linear.transition.numpy()
  finite = np.isfinite(transition).all(axis=(1, 2))
  radius = np.abs(np.linalg.eigvals(np.where(finite[:, None, None], transition, 0.0))).max(-1)
  stable = (finite & (radius < 1) & np.isfinite(std).all(1) & (std > 0).all(1)
            & np.isfinite(center).all(1) & np.isfinite(policy).all(1)
            & np.isfinite(slopes).all(axis=(1, 2)))
  ok = stable[:, None]
  return (np.where(ok, center, 0.0), np.where(ok, std, 1.0), np.where(ok, policy, 0.0),
          np.where(ok[..., None], slopes, 0.0), stable)


N_GRID = (15, 7, 15)     # `solve_block`'s defaults (their accuracy: the module docstring)
N_NODES = (15, 5)
SPAN = 4.0
ORDER = 1


def solve(economy, theta, block=None, progress=False, **options):
  """Solves at every row of `theta` `[n, P]` (NumPy), `block` thetas at a time (by default
  about `BLOCK_ELEMENTS` grid-point-node pairs), returns one TimeIterationNDReference.
  `options`: those of `solve_block`. `progress`: a tqdm bar over thetas."""
  from tqdm import tqdm
  theta = np.asarray(theta, np.float64).reshape(-1, economy.n_params)
  if block is None:
    size = (np.prod(per_state(options.get("n_grid", N_GRID), economy.n_state, "n_grid"))
            * np.prod(per_state(options.get("n_nodes", N_NODES), economy.n_shock, "n_nodes")))
    block = int(max(1, min(16, BLOCK_ELEMENTS // size)))
  started = time.perf_counter()
  parts = []
  with tqdm(total=len(theta), desc="time iteration", unit="theta", disable=not progress,
            mininterval=2.0) as bar:
    for i in range(0, max(len(theta), 1), block):
      parts.append(solve_block(economy, theta[i:i + block], **options))
      bar.update(len(parts[-1].theta))
  if len(parts) == 1:
    return parts[0]
  first = parts[0]
  join = lambda name: np.concatenate([getattr(p, name) for p in parts])
  return TimeIterationNDReference(
      economy, theta, join("center"), join("std"), first.shape, first.span, join("values"),
      join("valid"), join("iterations"), first.nodes, first.weights, first.chains, first.order,
      seconds=time.perf_counter() - started)


def solve_block(economy, theta, n_grid=N_GRID, n_nodes=N_NODES, span=SPAN,
                quadrature="hermite", tol=1e-10, max_iter=3000, bound=1.0, init="linear",
                order=ORDER, chunk=50, jit_compile=True, chains=10_000):
  """Solves at every row of `theta` `[n, P]` (NumPy) at once; returns a
  TimeIterationNDReference.

  `n_grid`, `span`: grid points and half-width in ergodic std, one number or one per state;
  `n_nodes`: quadrature nodes, one number or one per shock, of `quadrature` ("hermite" or
  "trapezoid", `time_iteration.QUADRATURES`); `order`: the interpolation's (`stencil`).
  `init`: "linear" (the perturbation's policy) or "zeros" (a check that the iteration, not the
  warm start, finds the solution). The loop runs `chunk` iterations per graph call; between
  calls the thetas that are done are dropped from the batch. `chains`: the ergodic sample's
  default size (the metric's scale; fewer where many thetas need only a loss weight).
  """
  started = time.perf_counter()
  S = economy.n_state
  shape = tuple(int(n) for n in per_state(n_grid, S, "n_grid"))
  spans = tuple(float(s) for s in per_state(span, S, "span"))
  if order not in (1, 3):
    raise UserError(f"order: 1 (linear) or 3 (cubic) interpolation, got {order}")
  if min(shape) < order + 1:
    raise UserError(f"n_grid: at least {order + 1} points per state for order {order}, "
                    f"got {shape}")
  nodes, weights = product_quadrature(per_state(n_nodes, economy.n_shock, "n_nodes"), quadrature)
  theta = np.asarray(theta, np.float64).reshape(-1, economy.n_params)
  n, n_pol = theta.shape[0], len(economy.policy_names)
  center, std, policy, slopes, stable = perturbation(economy, theta)
  deviation = std[:, None, :] * grid_points(shape, spans)[None]                 # [n, G, S]
  state = center[:, None, :] + deviation
  V = policy[:, None, :] + np.einsum("nps,ngs->ngp", slopes, deviation)        # [n, G, n_pol]
  if init == "zeros":
    V = np.zeros_like(V)

  active, ok, iters = stable.copy(), stable.copy(), np.zeros(n, np.int32)
  run_chunk = _chunk_function(economy, n_pol, shape, spans, order, float(tol), float(bound),
                              jit_compile)
  done = 0
  while done < max_iter and active.any():
    # XLA compiles once per batch size: the batch shrinks to powers of two, padded with thetas
    # that are done (their values are kept), so a block of n compiles log2(n) + 1 graphs.
    rows = np.flatnonzero(active)
    size = min(n, 1 << int(np.ceil(np.log2(len(rows)))))
    rows = np.concatenate([rows, np.flatnonzero(~active)[:size - len(rows)]])
    steps = min(chunk, max_iter - done)
    out = run_chunk(V[rows], active[rows], ok[rows], iters[rows], tf.constant(steps, tf.int32),
                    tf.constant(state[rows]), tf.constant(theta[rows]),
                    tf.constant(center[rows]), tf.constant(std[rows]), tf.constant(nodes),
                    tf.constant(weights))
    V[rows], active[rows], ok[rows], iters[rows] = (t.numpy() for t in out)
    done += steps
  return TimeIterationNDReference(economy, theta, center, std, shape, spans, V, ok & ~active,
                                  iters, nodes, weights, chains, order,
                                  seconds=time.perf_counter() - started)


class TimeIterationNDReference(Reference):
  """Policies on the tensor grid of each theta: `values` `[n, G, n_pol]` at the states
  `center + std * grid_points(shape, span)`; `center`, `std` `[n, S]`; `valid` `[n]`
  (converged), `iterations` `[n]`, `seconds` (the solve's wall time); `nodes` `[Q, K]`,
  `weights` `[Q]` the quadrature it was solved with."""

  def __init__(self, economy, theta, center, std, shape, span, values, valid, iterations, nodes,
               weights, chains, order=1, seconds=float("nan")):
    self.economy = economy
    self.theta = theta
    self.center, self.std = center, std
    self.shape, self.span = shape, span
    self.values = values
    self.valid = valid
    self.iterations = iterations
    self.nodes, self.weights = nodes, weights
    self.chains, self.order = chains, order
    self.seconds = seconds
    self._ergodic = {}

  def _interpolate_rows(self, state, rows):
    """Policies `[m, n_pol]` (tensor) at `state` `[m, S]`, point i on the grid of theta
    `rows[i]`."""
    G = self.values.shape[1]
    return interpolate(tf.constant(self.values.reshape(-1, self.values.shape[2])),
                       tf.constant(state, DTYPE), tf.constant(rows.astype(np.int64) * G),
                       tf.constant(self.center[rows]), tf.constant(self.std[rows]), self.shape,
                       self.span, self.order)

  def policies(self, state):
    """Policies `[n, m, n_pol]` (float64) at states `[n, m, S]`, row i at theta i."""
    state = np.asarray(state, np.float64)
    n, m, S = state.shape
    rows = np.repeat(np.arange(n), m)
    return self._interpolate_rows(state.reshape(-1, S), rows).numpy().reshape(n, m, -1)

  def ergodic_sample(self, chains=None, burn=300, seed=0):
    """States `[n, chains, S]` from each theta's ergodic distribution under this policy: chains
    (by default the solve's `chains`) started from the perturbation's ergodic normal law,
    stepped `burn` periods with standard normal innovations (the last state of each chain).
    Cached per setting."""
    key = (chains or self.chains, burn, seed)
    if key not in self._ergodic:
      self._ergodic[key] = self._simulate(*key)
    return self._ergodic[key]

  def _simulate(self, chains, burn, seed):
    economy, S = self.economy, self.economy.n_state
    n = len(self.theta)
    rows = np.repeat(np.arange(n), chains)
    theta = tf.constant(self.theta[rows])
    start = economy.ergodic_state(
        theta, tf.random.stateless_normal([n * chains, S], [seed, 0], dtype=DTYPE))
    G = self.values.shape[1]
    args = (tf.constant(self.values.reshape(-1, self.values.shape[2])),
            tf.constant(rows.astype(np.int64) * G), tf.constant(self.center[rows]),
            tf.constant(self.std[rows]))

    @tf.function(jit_compile=True)
    def run(state):
      def body(t, state):
        today = interpolate(args[0], state, *args[1:], self.shape, self.span, self.order)
        eps = tf.random.stateless_normal([n * chains, economy.n_shock], tf.stack([seed, t + 1]),
                                         dtype=DTYPE)
        return t + 1, economy.step(state, theta, eps, today)
      return tf.while_loop(lambda t, _: t < burn, body, (tf.constant(0), state))[1]

    return run(start).numpy().reshape(n, chains, S)

  def ergodic_mean(self, **sample):
    """Mean of each policy `[n, n_pol]` over `ergodic_sample(**sample)`."""
    return self.policies(self.ergodic_sample(**sample)).mean(axis=1)

  def scale(self, **sample):
    """Ergodic std of each policy `[n, n_pol]` over `ergodic_sample(**sample)`: the accuracy
    metric's denominator (|log f_nn - log f_ref| / sd_erg(log f_ref); policies are in logs)."""
    return self.policies(self.ergodic_sample(**sample)).std(axis=1)

  def probability_below(self, fn, **sample):
    """Ergodic probability `[n]` that `fn(state [n, m, S], policies [n, m, n_pol]) -> [n, m]`
    is negative, by Monte Carlo on `ergodic_sample(**sample)` (std error
    sqrt(p (1 - p) / chains))."""
    state = self.ergodic_sample(**sample)
    return np.mean(np.asarray(fn(state, self.policies(state))) < 0, axis=1)

  def as_policy(self):
    """`policy(state [m, S], theta [m, P]) -> [m, n_pol]` (float64 tensors) for thetas among this
    reference's rows (nearest row in box units): the form networks are called in."""
    span = np.where(self.economy.box_high > self.economy.box_low,
                    self.economy.box_high - self.economy.box_low, 1.0)
    def policy(state, theta):
      state, theta = np.asarray(state, np.float64), np.asarray(theta, np.float64)
      rows = np.argmin((((theta[:, None, :] - self.theta[None]) / span) ** 2).sum(-1), axis=1)
      return self._interpolate_rows(state, rows)
    return policy
