"""Parity comparison, validation across runtimes, latency, and the compatibility report."""
from attn_deploy.harness.compare import TOLERANCES, Comparison, OutputComparison, compare
from attn_deploy.harness.validate import Validation, validate_block, validate_file

__all__ = ["TOLERANCES", "Comparison", "OutputComparison", "Validation", "compare",
           "validate_block", "validate_file"]
