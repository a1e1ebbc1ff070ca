# `python -m apps.simulate` and `python apps/simulate.py` from the repository root: the app
# nk_keras.apps.simulate, installed as `nk-simulate`. No docstring, so that --help shows
# the app's.
import os
import sys

if not __package__:  # run as a file: the repository first on the path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nk_keras.apps import simulate

if __name__ == "__main__":
  simulate.run()
