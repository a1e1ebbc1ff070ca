"""The log-linearised three-equation New Keynesian model (KMR's proof of concept).

State: the natural rate `zeta`. Policies: output gap `X` and inflation `Pi`.
"""

import numpy as np
import tensorflow as tf

from nk_keras.economies.base import IndependentStates


class NewKeynesian(IndependentStates):
  name = "nk"
  param_names = ("beta", "sigma", "eta", "phi", "phi_pi", "phi_y", "rho_a", "sigma_a")
  state_names = ("zeta",)
  shock_names = ("eps",)
  policy_names = ("X", "Pi")
  residual_names = ("Euler", "NKPC")
  # Box of KMR's public code (their paper's Table 1 has eta in 1-4).
  box_low = np.array([0.95, 1.0, 0.25, 0.5, 1.25, 0.0, 0.8, 0.02])
  box_high = np.array([0.99, 3.0, 2.0, 0.9, 2.5, 0.5, 0.95, 0.1])
  calibration = np.array([0.97, 2.0, 1.125, 0.7, 1.875, 0.25, 0.875, 0.06])
  # A higher natural rate raises the output gap and inflation everywhere in the box: with
  # phi_pi > 1 > rho_a the Taylor rule leans against it, never overturns it.
  response_signs = ((1.0, 1.0),)
  labels = {"beta": "β, discount factor", "sigma": "σ, relative risk aversion",
            "eta": "η, inverse Frisch elasticity", "phi": "φ, Calvo price stickiness",
            "phi_pi": "φ_π, response to inflation", "phi_y": "φ_y, response to output gap",
            "rho_a": "ρ_a, shock persistence", "sigma_a": "σ_a, shock std",
            "zeta": "ζ, natural rate", "X": "X, output gap", "Pi": "Π, inflation"}

  def kappa(self, p):
    """Slope of the Phillips curve, from a dict of `[batch]` parameters."""
    return (1 - p["phi"]) * (1 - p["phi"] * p["beta"]) * (p["sigma"] + p["eta"]) / p["phi"]

  def innovation_scale(self, p):
    """`s_eps = sigma_a * sigma * (rho_a - 1) * omega`, negative since rho_a < 1."""
    omega = (1 + p["eta"]) / (p["sigma"] + p["eta"])
    return p["sigma_a"] * p["sigma"] * (p["rho_a"] - 1) * omega

  def ergodic_std(self, theta):
    p = self.unpack(theta)
    return (tf.abs(self.innovation_scale(p)) / tf.sqrt(1 - p["rho_a"] ** 2))[:, None]

  def step(self, state, theta, eps, today):
    p = self.unpack(theta)  # each [batch]; [batch, 1] broadcasts against eps [..., batch, 1]
    return p["rho_a"][:, None] * state + self.innovation_scale(p)[:, None] * eps

  def equilibrium(self, state, theta, eps, today, tomorrow, weights=None):
    zeta = state[:, 0]                                            # [batch]
    X, Pi = today[:, 0], today[:, 1]                              # [batch]
    EX = self.expect(tomorrow[..., 0], weights)                   # [batch]
    EPi = self.expect(tomorrow[..., 1], weights)
    p = self.unpack(theta)
    euler = X - EX + (p["phi_pi"] * Pi + p["phi_y"] * X - EPi - zeta) / p["sigma"]
    nkpc = Pi - self.kappa(p) * X - p["beta"] * EPi
    return tf.stack([euler, nkpc], axis=1)

  def closed_form(self, state, theta):
    p = self.unpack(theta)
    rho, beta = p["rho_a"], p["beta"]
    D = ((p["sigma"] * (1 - rho) + p["phi_y"]) * (1 - beta * rho)
         + self.kappa(p) * (p["phi_pi"] - rho))
    a = (1 - beta * rho) / D
    b = self.kappa(p) / D
    return tf.stack([a * state[:, 0], b * state[:, 0]], axis=-1)

  def state_space(self, theta):
    p = self.unpack(theta)
    one = tf.ones_like(p["rho_a"])[:, None]                       # [n, 1]
    loadings = self.closed_form(one, theta)                       # [n, 2]: policy per unit zeta
    return {"transition": p["rho_a"][:, None, None],
            "innovation_std": tf.abs(self.innovation_scale(p))[:, None],
            "loadings": loadings[:, :, None],
            "initial_std": self.ergodic_std(theta)}
