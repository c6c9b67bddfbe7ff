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


class UserCodeError(AttnDeployError):
    """The user's own code raised: importing their model module, calling their factory, or
    their model's forward on the example inputs. The message names the step and the exception;
    the original is chained (``__cause__``), and the CLI shows its traceback with ``--debug``."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters), to quote another
    exception inside a one-line error."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
