"""PyTorch eager runner (CPU or CUDA), the fp32 reference of every comparison."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from attn_deploy.backends.base import Runner, TensorMeta


class TorchRunner(Runner):
    """Runs ``model`` eagerly under ``torch.inference_mode`` on ``device``.

    ``inputs``: {name: (torch dtype, shape template)} as a block spec gives them;
    ``output_names`` name the forward's outputs in order.
    """

    def __init__(self, model: nn.Module, inputs: dict[str, tuple[torch.dtype, tuple]],
                 output_names: Sequence[str], device: str = "cpu"):
        super().__init__()
        self.model, self.inputs, self.output_names = model, inputs, list(output_names)
        self.device = torch.device(device)
        self.name = f"torch-{self.device.type}"

    def availability(self) -> tuple[bool, str]:
        if self.device.type == "cuda" and not torch.cuda.is_available():
            return False, "no CUDA device (or a CPU build of torch)"
        return True, ""

    def input_metadata(self) -> dict[str, TensorMeta]:
        return {n: TensorMeta(n, np.dtype(torch.empty((), dtype=d).numpy().dtype), tuple(t))
                for n, (d, t) in self.inputs.items()}

    def _activate(self) -> None:
        self.model = self.model.to(self.device).eval()

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(self.device,
                                                                    self.inputs[n][0])
                for n in self.inputs]
        with torch.inference_mode():
            out = self.model(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return {n: o.detach().cpu().numpy() for n, o in zip(self.output_names, out)}

    def time_infer(self, feed: dict[str, np.ndarray]) -> float:
        """On a GPU, CUDA events around the call (the kernels' time, not the launches')."""
        if self.device.type != "cuda":
            return super().time_infer(feed)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        self.infer(feed, check=False)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    def peak_memory_mb(self) -> tuple[float | None, str]:
        if self.device.type != "cuda":
            return super().peak_memory_mb()
        return torch.cuda.max_memory_allocated(self.device) / 2**20, "cuda max allocated"

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
