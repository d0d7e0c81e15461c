"""Run passes in order, verifying the program after each so a broken pass is caught at once."""
from __future__ import annotations

from typing import Callable, Sequence

from ..errors import VerificationError
from ..ir.program import Program
from ..ir.verify import verify
from .const_fold import fold_constants
from .dce import eliminate_dead_code
from .fold_conv import fold_conv
from .fold_scale import fold_scale
from .fuse_attention import fuse_attention
from .state_updates import update_states_in_place

Pass = Callable[[Program], Program]

DEFAULT_PASSES: tuple[Pass, ...] = (eliminate_dead_code, fold_constants, fold_conv, fold_scale, fuse_attention, eliminate_dead_code,
                                   update_states_in_place)


def run_passes(program: Program, passes: Sequence[Pass] = DEFAULT_PASSES) -> Program:
    verify(program)
    for p in passes:
        program = p(program)
        try:
            verify(program)
        except VerificationError as e:
            raise VerificationError(f"after pass {p.__name__}: {e}") from None
    return program
