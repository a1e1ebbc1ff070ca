"""First-order perturbation of any economy, from its own `step` and `equilibrium`: the scales a
network and a sampler need when the economy has no closed form for them.

At each theta (vectorised over rows, dtype-agnostic, XLA-compilable, no host round trip):
1. the deterministic steady state `(s*, p*)`: `step(s*, theta, 0, p*) = s*` and the equilibrium
   residuals vanish with tomorrow's policies equal to today's, by Newton from zero;
2. the linear policy `p - p* = P (s - s*)`: with the derivatives of the residuals with respect to
   the state, today's and tomorrow's policies (`F_s`, `F_p`, `F_q`) and of the law of motion
   (`A_s`, `A_p`, `B` for the innovations), `P` solves `F_s + F_p P + F_q P (A_s + A_p P) = 0`;
   linear time iteration (Rendahl 2017), `P <- -(F_p + F_q P A_p)^-1 (F_s + F_q P A_s)` from
   `P = 0`, converges to the stable solution where one exists;
3. the states' ergodic covariance under that law, `S = M S M' + B B'` with `M = A_s + A_p P`, by
   doubling (`2^DOUBLINGS` terms of the series).

Innovations enter at first order only through the law of motion (certainty equivalence). The
derivatives come from the economy's own functions, by central differences: a new model needs
nothing here. A theta without a stable linear solution gives non-finite or exploding numbers; the scales are
for sampling and normalising, where the economy's domain keeps such thetas out.

Linear systems are solved by unrolled Gauss-Jordan elimination (`solve`): a few elementwise ops
per entry, which XLA fuses and which ONNX converters translate (they do not take `MatrixSolve`).
"""

import collections

import tensorflow as tf

NEWTON_STEPS = 8        # steady state: quadratic convergence from zero
# The linear policy: linear time iteration converges linearly (about 0.87 per iteration at
# rank_zlb's calibration), safely into the stable solution's basin; Newton then finishes it.
LINEAR_ITERATIONS = 20
POLICY_NEWTON_STEPS = 4
DOUBLINGS = 12          # covariance: 4,096 terms; a persistence of 0.99 leaves 1e-18
STEP = 1e-4             # central differences (`jacobians`)

Linear = collections.namedtuple(
    "Linear", "state policy slopes transition impact covariance")
Linear.__doc__ = """The first-order solution at each theta: `state` `[b, n_state]` and `policy`
`[b, n_pol]` at the deterministic steady state, `slopes` `[b, n_pol, n_state]` (P), the linear
law of the states `transition` `[b, n_state, n_state]` (M) and `impact` `[b, n_state, n_shock]`
(B), and the states' ergodic `covariance` `[b, n_state, n_state]`."""


def solve(a, b):
  """`a^-1 b` for `a` `[n, k, k]`, `b` `[n, k, m]`, by Gauss-Jordan elimination unrolled over
  `k` (small), without pivoting: for the well-conditioned Jacobians of an equilibrium. A
  singular `a` gives non-finite values, never an exception."""
  k = a.shape[-1]
  rows_a, rows_b = tf.unstack(a, axis=1), tf.unstack(b, axis=1)         # k of [n, k], [n, m]
  for i in range(k):
    pivot = rows_a[i][:, i:i + 1]
    rows_a[i], rows_b[i] = rows_a[i] / pivot, rows_b[i] / pivot
    for j in range(k):
      if j != i:
        factor = rows_a[j][:, i:i + 1]
        rows_a[j] = rows_a[j] - factor * rows_a[i]
        rows_b[j] = rows_b[j] - factor * rows_b[i]
  return tf.stack(rows_b, axis=1)


def jacobians(fn, inputs, theta):
  """Per-row Jacobians of `fn(*inputs, theta) -> [b, m]` with respect to each input `[b, n_i]`:
  `[b, m, n_i]` each, by central differences of step `STEP` (model units: logs and rates).

  All the moved inputs go through `fn` as one batch (`theta` `[b, n_params]` repeated with
  them): one copy of the economy's equations in the graph rather than one per direction, which
  kept tracing, export and ONNX conversion of a three-state economy at minutes.

  Not autodiff: the graph of a served policy solves this perturbation for its scales, and
  derivative graphs carry ops that ONNX converters do not take. The steady state is smooth
  (a constraint such as the ZLB is far from binding there), so the differences are exact to
  ~1e-5 in float32 and ~1e-8 in float64, more than scales and Newton's steps need."""
  sizes = [x.shape[-1] for x in inputs]
  n_dir = sum(sizes)
  offsets = [sum(sizes[:i]) for i in range(len(sizes))]
  moved = []
  for x, n, offset in zip(inputs, sizes, offsets):
    # [2 n_dir, n]: row d (and n_dir + d, the other sign) moves this input's coordinate
    # d - offset when direction d is one of its own.
    plus = tf.one_hot(tf.range(n_dir) - offset, n, dtype=x.dtype) * STEP
    delta = tf.concat([plus, -plus], axis=0)
    moved.append(tf.reshape(x[None] + delta[:, None, :], [-1, n]))
  out = fn(*moved, tf.tile(theta, [2 * n_dir, 1]))
  out = tf.reshape(out, [2, n_dir, -1, out.shape[-1]])
  jacobian = tf.transpose((out[0] - out[1]) / (2 * STEP), [1, 2, 0])       # [b, m, n_dir]
  return tf.split(jacobian, sizes, axis=2)


def _steady_state(economy, theta):
  """`(s*, p*)` `[b, n_state]`, `[b, n_pol]` by Newton on the stacked conditions."""
  S, n_pol = economy.n_state, len(economy.policy_names)
  batch = tf.shape(theta)[0]
  one = tf.ones([1], theta.dtype)

  def conditions(x, theta):
    s, p = x[:, :S], x[:, S:]
    no_shock = _no_shock(economy, x)
    moved = economy.step(s, theta, no_shock[0], p) - s
    residuals = economy.equilibrium(s, theta, no_shock, p, p[None], one)
    return tf.concat([moved, residuals], axis=1)

  def newton(x):
    jacobian, = jacobians(conditions, [x], theta)
    return x - solve(jacobian, conditions(x, theta)[..., None])[..., 0]

  x = repeat(newton, NEWTON_STEPS, tf.zeros(tf.stack([batch, S + n_pol]), theta.dtype))
  return x[:, :S], x[:, S:]


def _no_shock(economy, x):
  """Zero innovations `[1, b, n_shock]` for the rows of `x` `[b, ...]`: one quadrature node."""
  return tf.zeros(tf.stack([1, tf.shape(x)[0], economy.n_shock]), x.dtype)


def repeat(body, times, *values):
  """`body` applied `times` times to `values` in a `tf.while_loop`: traced once, so the graph
  (and XLA's compile time) stays small however many iterations run."""
  out = tf.while_loop(lambda i, *_: i < times, lambda i, *v: (i + 1, *_tuple(body(*v))),
                      (tf.constant(0), *values))
  return out[1] if len(values) == 1 else out[1:]


def _tuple(x):
  return x if isinstance(x, tuple) else (x,)


def linearise(economy, theta):
  """The `Linear` solution at each row of `theta` `[b, n_params]`."""
  state, policy = _steady_state(economy, theta)
  batch = tf.shape(theta)[0]
  eps = tf.zeros(tf.stack([batch, economy.n_shock]), theta.dtype)
  one = tf.ones([1], theta.dtype)
  A_s, A_p, B = jacobians(lambda s, p, e, th: economy.step(s, th, e, p), [state, policy, eps],
                          theta)
  # Today's and tomorrow's policies, both the steady state's, as separate inputs: a move of
  # one must not reach the other.
  F_s, F_p, F_q = jacobians(
      lambda s, p, q, th: economy.equilibrium(s, th, _no_shock(economy, s), p, q[None], one),
      [state, policy, policy], theta)

  n_pol, S = F_s.shape[1], F_s.shape[2]
  eye = tf.eye(S, dtype=theta.dtype)

  def linear_time_iteration(P):
    return -solve(F_p + mm(F_q, mm(P, A_p)), F_s + mm(F_q, mm(P, A_s)))

  def newton(P):
    # R(P) = F_s + F_p P + F_q P M(P), M = A_s + A_p P; its derivative along dP [m, l] at
    # entry [i, j] is G[i, m] [l = j] + F_q[i, m] M[l, j], G = F_p + F_q P A_p.
    M = A_s + mm(A_p, P)
    R = F_s + mm(F_p, P) + mm(F_q, mm(P, M))
    G = F_p + mm(F_q, mm(P, A_p))
    J = (G[:, :, None, :, None] * eye[None, None, :, None, :]
         + F_q[:, :, None, :, None] * tf.linalg.matrix_transpose(M)[:, None, :, None, :])
    J = tf.reshape(J, [-1, n_pol * S, n_pol * S])
    return P - tf.reshape(solve(J, tf.reshape(R, [-1, n_pol * S, 1])), tf.shape(P))

  P = repeat(linear_time_iteration, LINEAR_ITERATIONS, tf.zeros_like(F_s))  # [b, n_pol, S]
  P = repeat(newton, POLICY_NEWTON_STEPS, P)
  M = A_s + mm(A_p, P)                                                      # [b, S, S]
  transpose = tf.linalg.matrix_transpose

  def doubling(cov, power):
    return cov + mm(power, mm(cov, transpose(power))), mm(power, power)

  cov, _ = repeat(doubling, DOUBLINGS, mm(B, transpose(B)), M)
  return Linear(state, policy, P, M, B, cov)


def mm(a, b):
  """Batched product of small matrices `[n, i, k] @ [n, k, j]` as one broadcast and sum, which
  XLA fuses with its neighbours (a batched dot of 2 x 3 matrices runs as thousands of tiny
  kernels)."""
  return tf.reduce_sum(a[:, :, :, None] * b[:, None, :, :], axis=2)
