"""The one exception type for user mistakes.

Internal invariants use ``assert`` or ordinary exceptions; anything a user can fix (an unknown
block key, a tensor of the wrong shape, an attribute out of range, an unwritable path) raises
:class:`AttnDeployError`, whose message names the input, what was expected and what was seen.
It subclasses ``ValueError`` so that callers catching the standard type keep working.
"""


class AttnDeployError(ValueError):
    """A user-facing error: bad input, bad configuration, or an unavailable runtime asked for."""


class RuntimeUnavailableError(AttnDeployError):
    """A runtime (TensorRT, CUDA, ONNX Runtime provider) was requested but is not installed."""
