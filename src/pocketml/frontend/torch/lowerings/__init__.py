"""Lowerings, one module per op family. Importing this package registers them all."""
from . import (activation, attention, conv, creation, elementwise, indexing, linalg,  # noqa: F401
               norm, pool, recurrent, reduce, resize, shape, softmax)
