"""Op families. Importing this package registers every op (one module per family)."""
from . import (activation, attention, const, conv, creation, elementwise, indexing, linalg,  # noqa: F401
               norm, pool, recurrent, reduce, resize, shape, softmax)
