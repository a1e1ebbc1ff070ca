# `python -m apps.train` and `python apps/train.py` from the repository root: the app
# nk_keras.apps.train, installed as `nk-train`. No docstring, so that --help shows
# the app's.
import os
import sys

if not __package__:  # run as a file: the repository first on the path
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nk_keras.apps import train

if __name__ == "__main__":
  train.run()
