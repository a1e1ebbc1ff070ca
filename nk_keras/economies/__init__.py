"""Economies by name: the one place that knows which models exist."""

from nk_keras.economies.base import Economy
from nk_keras.economies.nk import NewKeynesian
from nk_keras.economies.rank_zlb import RankZLB
from nk_keras.economies.rank_zlb_inertia import RankZLBInertia
from nk_keras.errors import UserError

ECONOMIES = {cls.name: cls for cls in (NewKeynesian, RankZLB, RankZLBInertia)}


def get(name, prior=None):
  if name not in ECONOMIES:
    raise UserError(f"unknown economy {name!r}; known: {', '.join(ECONOMIES)}")
  return ECONOMIES[name](prior=prior)
