"""Graph passes over the IR (each verified after it runs)."""
from .const_fold import fold_constants
from .dce import eliminate_dead_code
from .pipeline import DEFAULT_PASSES, run_passes

__all__ = ["DEFAULT_PASSES", "eliminate_dead_code", "fold_constants", "run_passes"]
