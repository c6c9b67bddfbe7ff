"""LSTM and GRU layers (the notes' "Gate Mechanism"), exported to ONNX's LSTM / GRU operators.

Papers: Hochreiter, Schmidhuber, "Long Short-Term Memory", Neural Computation 1997 (with the
forget gate of Gers et al. 2000); Cho et al., "Learning Phrase Representations using RNN
Encoder-Decoder for Statistical Machine Translation", EMNLP 2014, arXiv:1406.1078.

Gates are sigmoid layers multiplied pointwise into the state. LSTM: input, forget and output
gates i, f, o and candidate g; ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``. GRU: update
and reset gates z, r; ``n = tanh(W_n x + r * (U_n h + b_hn) + b_in)`` (the reset gate applied
after the recurrent matmul: ONNX GRU's ``linear_before_reset=1``, PyTorch's and cuDNN's form),
``h_t = (1 - z) * n + z * h_{t-1}``. Eager mode runs torch's nn.LSTM / nn.GRU. Export emits one
ONNX LSTM / GRU node per layer (TensorRT parses both), not an unrolled loop, through
``torch.onnx.ops.symbolic_multi_out`` with the weights re-ordered to ONNX's gate order (LSTM
i,o,f,c; GRU z,r,h). Why not torch's own lowering: torch.export's shape propagation for
aten.lstm / aten.gru unrolls over time and pins the sequence length to the example's.

Layout: ``x [N, L, input_size]`` (batch first) -> ``y [N, L, D * hidden]``, D = 2 if
bidirectional; the states ``h_n`` (and ``c_n``) are ``[num_layers * D, N, hidden]`` (PyTorch's
layout, not batch first). ``with_initial_state=True`` makes ``h0`` (and ``c0``) inputs of the
exported model with that same layout; otherwise they are zeros. Choices: no packed sequences
(pad and mask downstream: a fixed L per batch keeps the graph a single LSTM / GRU node).
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import bool_arg, int_arg, rate_arg
from attn_deploy.modules.layers import check_sequence
from attn_deploy.modules.registry import register

# ONNX gate order as indices into torch's chunks: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
ONNX_GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2)}


class _Recurrent(nn.Module):
    rnn_type: type[nn.RNNBase]
    state_names: tuple[str, ...]
    onnx_op: str

    def __init__(self, input_size: int = 32, hidden_size: int = 32, num_layers: int = 1,
                 bidirectional: bool = False, with_initial_state: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        input_size = int_arg("input_size", input_size)
        hidden_size = int_arg("hidden_size", hidden_size)
        num_layers, dropout = int_arg("num_layers", num_layers), rate_arg("dropout", dropout)
        bidirectional = bool_arg("bidirectional", bidirectional)
        with_initial_state = bool_arg("with_initial_state", with_initial_state)
        self.input_size, self.with_initial_state = input_size, with_initial_state
        self.rnn = self.rnn_type(input_size, hidden_size, num_layers, batch_first=True,
                                 bidirectional=bidirectional, dropout=dropout)
        self.state_shape = (num_layers * (2 if bidirectional else 1), hidden_size)

    def _check(self, x: torch.Tensor, states: tuple[torch.Tensor | None, ...]) -> None:
        check_sequence("x", x, self.input_size)
        want = (self.state_shape[0], x.shape[0], self.state_shape[1])
        for name, s in zip(self.state_names, states):
            if s is not None and (s.dim() != 3 or tuple(s.shape) != want):
                raise AttnDeployError(f"{name}: expected [num_layers * directions, N, hidden] "
                                      f"= {list(want)}, got {tuple(s.shape)}")
        if any(s is None for s in states) and not all(s is None for s in states):
            raise AttnDeployError(f"{', '.join(self.state_names)}: give all or none")

    def _onnx_weights(self, layer: int) -> list[torch.Tensor]:
        """W [D, G*H, in], R [D, G*H, H], B [D, 2*G*H] of one layer in ONNX gate order."""
        rnn, order = self.rnn, ONNX_GATE_ORDER[self.onnx_op]
        suffixes = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if rnn.bidirectional else [])

        def reorder(t: torch.Tensor) -> torch.Tensor:
            gates = t.chunk(len(order), 0)
            return torch.cat([gates[i] for i in order], 0)

        w = torch.stack([reorder(getattr(rnn, "weight_ih" + s)) for s in suffixes])
        r = torch.stack([reorder(getattr(rnn, "weight_hh" + s)) for s in suffixes])
        b = torch.stack([torch.cat([reorder(getattr(rnn, "bias_ih" + s)),
                                    reorder(getattr(rnn, "bias_hh" + s))]) for s in suffixes])
        return [w, r, b]

    def _onnx_forward(self, x: torch.Tensor, states: tuple[torch.Tensor, ...]
                      ) -> tuple[torch.Tensor, ...]:
        """The ONNX graph: one LSTM / GRU node per layer, time-major inside."""
        rnn, n, length = self.rnn, x.shape[0], x.shape[1]
        dirs, hidden = 2 if rnn.bidirectional else 1, rnn.hidden_size
        attrs = {"hidden_size": hidden,
                 "direction": "bidirectional" if rnn.bidirectional else "forward"}
        if self.onnx_op == "GRU":
            attrs["linear_before_reset"] = 1
        seq, finals = x.transpose(0, 1), [[] for _ in self.state_names]   # [L, N, in]
        for layer in range(rnn.num_layers):
            init = [s[layer * dirs:(layer + 1) * dirs] for s in states]
            extra = [None, *init] if init else []          # sequence_lens is left out
            outs = torch.onnx.ops.symbolic_multi_out(
                f"::{self.onnx_op}", [seq, *self._onnx_weights(layer), *extra], attrs,
                dtypes=[x.dtype] * (1 + len(finals)),
                shapes=[[length, dirs, n, hidden]] + [[dirs, n, hidden]] * len(finals))
            seq = outs[0].transpose(1, 2).flatten(2)                       # [L, N, D*H]
            for acc, s in zip(finals, outs[1:]):
                acc.append(s)
        return (seq.transpose(0, 1), *(torch.cat(acc, 0) for acc in finals))


class LSTMGates(_Recurrent):
    rnn_type, state_names, onnx_op = nn.LSTM, ("h0", "c0"), "LSTM"

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None,
                c0: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """x: [N, L, input], h0/c0: [layers * dirs, N, hidden] -> (y, h_n, c_n)."""
        self._check(x, (h0, c0))
        if torch.onnx.is_in_onnx_export():
            return self._onnx_forward(x, () if h0 is None else (h0, c0))
        y, (h, c) = self.rnn(x) if h0 is None else self.rnn(x, (h0, c0))
        return y, h, c


class GRUGates(_Recurrent):
    rnn_type, state_names, onnx_op = nn.GRU, ("h0",), "GRU"

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, L, input], h0: [layers * dirs, N, hidden] -> (y, h_n)."""
        self._check(x, (h0,))
        if torch.onnx.is_in_onnx_export():
            return self._onnx_forward(x, () if h0 is None else (h0,))
        return self.rnn(x, h0)


def _inputs(states: tuple[str, ...]):
    def inputs(c):
        out = {"x": ("N", "L", c["input_size"])}
        if c["with_initial_state"]:
            layers = c["num_layers"] * (2 if c["bidirectional"] else 1)
            out.update({s: (layers, "N", c["hidden_size"]) for s in states})
        return out
    return inputs


register(
    "lstm", LSTMGates, title="LSTM gates", paper="Hochreiter & Schmidhuber, Neural Comp. 1997",
    family="channel", export_path="std", inputs=_inputs(LSTMGates.state_names),
    outputs=("y", "h_n", "c_n"), dims={"N": 2, "L": 8},
)
register(
    "gru", GRUGates, title="GRU gates", paper="Cho et al., EMNLP14, arXiv:1406.1078",
    family="channel", export_path="std", inputs=_inputs(GRUGates.state_names),
    outputs=("y", "h_n"), dims={"N": 2, "L": 8},
)
