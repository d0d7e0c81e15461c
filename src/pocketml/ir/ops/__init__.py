"""Op families. Importing this package registers every op (one module per family)."""
from . import (activation, attention, compressed, const, conv, creation, elementwise, indexing,  # noqa: F401
               linalg, norm, pool, recurrent, reduce, resize, rowquant, shape, softmax, state)
