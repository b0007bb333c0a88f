"""asv benchmark suites for vaecf (see asv.conf.json and `nox -s bench`).

TensorFlow's start-up logging is silenced for every suite: the level here (before anything can
import TensorFlow), and the suites that need TensorFlow import it through
``common.import_tensorflow_quietly``. Nothing here imports it: the data-preparation memory
benchmark measures preparation alone.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
