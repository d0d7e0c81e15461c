"""The PyTorch frontend (needs torch): torch.export programs → IR."""
from .builder import Builder, Var
from .convert import export, to_program
from .registry import Unsupported, lowers, supported_targets

__all__ = ["Builder", "Var", "Unsupported", "export", "lowers", "supported_targets", "to_program"]
