"""Reproduce a verdict with NVIDIA's Polygraphy: the same model, the same inputs, and the
PyTorch reference outputs, compared by Polygraphy's own comparator.

Writes ``inputs.json`` and ``reference_outputs.json`` in Polygraphy's format next to the model,
runs ``Comparator`` with its ONNX Runtime runner (and its TensorRT runner when TensorRT and the
plugin library are present), and returns the verdict with the equivalent ``polygraphy run``
command line. Polygraphy judges element-wise (|out - ref| <= atol + rtol * |ref|), a stricter
rule on large outputs than attn_deploy's relative L2 error; the tolerances used are printed.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from attn_deploy.errors import AttnDeployError

# Element-wise tolerances for Polygraphy: per-element rounding differences are larger than
# the L2-averaged ones that attn_deploy's 1e-5 rule bounds.
POLYGRAPHY_TOLERANCES = {"fp32": (1e-4, 1e-5), "fp16": (1e-2, 1e-3)}  # (rtol, atol)


@dataclass
class PolygraphyVerdict:
    passed: bool
    command: str
    runners: list[str]
    inputs_path: Path
    reference_path: Path

    def __bool__(self) -> bool:
        return self.passed


def polygraphy_compare(model_path: str | Path, feeds: Sequence[Mapping[str, np.ndarray]],
                       references: Sequence[Mapping[str, np.ndarray]], *,
                       precision: str = "fp32", plugin_library: str | None = None,
                       out_dir: str | Path | None = None,
                       quiet: bool = True) -> PolygraphyVerdict:
    """Compare Polygraphy's runners on ``feeds`` against the PyTorch ``references``."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.comparator import Comparator, IterationResult, RunResults
    from polygraphy.comparator.compare import SimpleCompareFunc
    from polygraphy.json import save_json

    model_path = Path(model_path)
    out = Path(out_dir or model_path.parent)
    inputs_path = out / f"{model_path.stem}.inputs.json"
    ref_path = out / f"{model_path.stem}.reference_outputs.json"
    feeds = [{k: np.ascontiguousarray(v) for k, v in f.items()} for f in feeds]
    save_json(feeds, str(inputs_path), description="attn_deploy inputs")
    ref = RunResults()
    ref.append(("pytorch", [IterationResult({k: np.asarray(v) for k, v in r.items()},
                                            runner_name="pytorch") for r in references]))
    ref.save(str(ref_path))

    runners = [OnnxrtRunner(SessionFromOnnx(str(model_path)))]
    flags = ["--onnxrt"]
    if plugin_library and _tensorrt_present():
        from polygraphy.backend.trt import (CreateConfig, EngineFromNetwork, LoadPlugins,
                                            NetworkFromOnnxPath, TrtRunner)

        from attn_deploy.backends.tensorrt.plugin_library import (STATIC_LIBRARY_NAME,
                                                                  static_companion)
        # Polygraphy only dlopens plugin libraries: it needs the companion that registers.
        companion = static_companion(Path(plugin_library))
        if companion is None:
            raise AttnDeployError(f"{STATIC_LIBRARY_NAME} is not beside {plugin_library}; "
                                  "Polygraphy needs it to load the plugins")
        plugin_library = str(companion)
        network = LoadPlugins(plugins=[plugin_library], obj=NetworkFromOnnxPath(str(model_path)))
        config = CreateConfig(fp16=precision == "fp16")
        runners.append(TrtRunner(EngineFromNetwork(network, config=config)))
        flags += ["--trt", "--plugins", plugin_library] + (["--fp16"] if precision == "fp16"
                                                          else [])
    rtol, atol = POLYGRAPHY_TOLERANCES[precision]
    from polygraphy.logger import G_LOGGER
    G_LOGGER.module_severity = G_LOGGER.ERROR if quiet else G_LOGGER.INFO
    results = Comparator.run(runners, data_loader=feeds)
    results.extend(RunResults.load(str(ref_path)))
    verdict = Comparator.compare_accuracy(
        results, compare_func=SimpleCompareFunc(rtol=rtol, atol=atol))
    command = " ".join(["polygraphy", "run", shlex.quote(str(model_path)), *flags,
                        "--load-inputs", shlex.quote(str(inputs_path)),
                        "--load-outputs", shlex.quote(str(ref_path)),
                        "--rtol", str(rtol), "--atol", str(atol)])
    return PolygraphyVerdict(bool(verdict), command, [r.name for r in runners], inputs_path,
                             ref_path)


def _tensorrt_present() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True
