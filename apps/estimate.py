# `python -m apps.estimate` and `python apps/estimate.py` from the repository root: the app
# nk_keras.apps.estimate, installed as `nk-estimate`. No docstring, so that --help shows
# the app's.
import os
import sys

if not __package__:  # run as a file: the repository first on the path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nk_keras.apps import estimate

if __name__ == "__main__":
  estimate.run()
