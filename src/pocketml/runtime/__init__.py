"""The runtime: plan and execute programs. Imports NumPy only, never torch."""
from .executor import PRECISIONS, Executor, check_inputs
from .plan import PlanStep, PlanSummary
from .state import State

__all__ = ["PRECISIONS", "Executor", "check_inputs", "PlanStep", "PlanSummary", "State"]
