"""``deployable(model)``: swap layers that do not export, or export wrongly, for attn_deploy's
equivalents carrying the same weights, and report each swap.

    model, report = attn_deploy.deployable(model)
    print(report)            # one line per replaced layer: path, from, to, why

Returns ``(model, report)``: a copy of the model with the layers replaced (the argument is left
untouched unless ``inplace=True``) and a :class:`DeployReport` (a list of :class:`Swap`; layers
that match but cannot be swapped are listed under ``skipped`` with the reason).

Before a layer is replaced, the layer and its replacement run on the same random probe input
(odd, non-square sizes) and must agree to a relative L2 error of 1e-5: the check the command-line
pipeline runs on the whole model. A look-alike whose maths differ (same children and
parameters, another forward) is refused: kept as it is and listed under ``skipped`` with the
error measured. A layer that cannot run here (mmcv's compiled ops absent) is swapped, and the
swap says it was not compared.

Recognised, by parameter layout and attributes (mmcv is never imported):
- mmcv-style ``CrissCrossAttention`` (children ``query_conv``, ``key_conv``, ``value_conv``, 1x1
  convs, and ``gamma``: a one-element parameter, or mmcv's ``Scale`` module holding ``scale``):
  four einsums and a ``torch.diag`` -inf mask. The legacy exporter refuses ``torch.diag``; the
  dynamo exporter gives correct numbers but a 24-node graph (Einsum, Concat of the H+W energies,
  an in-graph diagonal mask) that materialises every energy. Becomes block ``cca`` with
  recurrence 1 (mmcv's module is one step; the recurrent head calls it R times): one
  ``CrissCrossAttention`` node, run by the fused TensorRT plugin.
- mmcv-style ``CARAFEPack`` (children ``channel_compressor``, ``content_encoder``; attributes
  ``scale_factor``, ``up_kernel``, ``up_group``): mmcv's ``carafe`` is an autograd Function
  around its compiled kernel, which torch.export cannot trace (and mmcv's own ONNX symbolic needs
  mmcv's runtime libraries). Becomes block ``carafe`` (one ``CARAFE`` node), same state_dict keys.
- ``nn.AdaptiveAvgPool2d`` / ``nn.AdaptiveMaxPool2d`` to any output size but (1, 1): the dynamo
  exporter sizes the pooling kernel for the example input, which is wrong at other sizes
  (measured with torch 2.13: max abs error 0.4 for output size 3, 0.37 for (1, None) at a second
  input size). Becomes :class:`attn_deploy.modules.adaptive_pool.AdaptivePool2d`. Global pooling
  to (1, 1) exports correctly and is kept. Max pooling with ``return_indices`` is skipped.

Original key names stay loadable: a swapped layer accepts the state_dict keys of the layer it
replaced through a load_state_dict pre-hook (:class:`OriginalKeys`), so a checkpoint of the
original model loads the same before or after ``deployable()``. Criss-cross attention renames
``query_conv``/``key_conv``/``value_conv`` to ``query``/``key``/``value`` and mmcv's ``Scale``
(``gamma.scale``, a 0-d tensor) to the one-element ``gamma``, and fills the biases an original
without them lacks with zeros; CARAFE keeps mmcv's names; pooling has no weights.
:func:`rename_original_keys` applies the same renames to a whole state_dict up front (the
checkpoint loader uses it to report missing and unexpected keys before loading).
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Callable, Mapping, MutableMapping

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError


@dataclass(frozen=True)
class Swap:
    path: str           # dotted module path in the model ("" for the model itself)
    original: str       # class name of the replaced layer
    replacement: str    # what replaced it
    reason: str
    check: str = ""     # the equivalence check's outcome ("matches: rel L2 3e-08", ...)


@dataclass
class DeployReport:
    swaps: list[Swap] = field(default_factory=list)
    skipped: list[Swap] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.swaps)

    def __str__(self) -> str:
        if not self.swaps and not self.skipped:
            return "deployable: nothing to replace"
        lines = [f"deployable: replaced {len(self.swaps)} layer(s)"]
        lines += [f"  {s.path or '<model>'}: {s.original} -> {s.replacement} ({s.reason})"
                  + (f"; {s.check}" if s.check else "") for s in self.swaps]
        lines += [f"  kept {s.path or '<model>'}: {s.original} ({s.reason})" for s in self.skipped]
        return "\n".join(lines)


@dataclass(frozen=True)
class OriginalKeys:
    """The key names of the layer a swap replaced: ``renames`` (old local name -> new local
    name) and ``zeros`` (new local names the old layout lacks, filled with zeros when a
    state_dict in the old layout is loaded: biases the original convs did not have)."""

    renames: Mapping[str, str]
    zeros: tuple[str, ...] = ()

    def apply(self, module: nn.Module, state: MutableMapping, prefix: str) -> int:
        """Rename ``prefix + old`` keys of ``state`` in place (reshaping a value to the new
        parameter's shape when only the shape's form differs, 0-d -> [1]); returns how many
        keys were renamed."""
        own = dict(module.named_parameters()) | dict(module.named_buffers())
        present = [old for old in self.renames if prefix + old in state]
        count = 0
        for old in present:
            new = self.renames[old]
            value = state.pop(prefix + old)
            target = own.get(new)
            if isinstance(value, torch.Tensor) and target is not None and \
                    value.shape != target.shape and value.numel() == target.numel():
                value = value.reshape(target.shape)
            state[prefix + new] = value
            count += old != new
        if count:
            for new in self.zeros:
                if prefix + new not in state and new in own:
                    state[prefix + new] = torch.zeros_like(own[new])
        return count


def _original_keys_hook(keys: OriginalKeys, module, state_dict, prefix, *_) -> None:
    keys.apply(module, state_dict, prefix)


def accept_original_keys(module: nn.Module, keys: OriginalKeys) -> nn.Module:
    """Make ``module.load_state_dict`` (and any parent's) accept the original names in
    ``keys``; :func:`rename_original_keys` finds them too."""
    module._attn_deploy_original_keys = keys
    module.register_load_state_dict_pre_hook(functools.partial(_original_keys_hook, keys))
    return module


def rename_original_keys(model: nn.Module, state: Mapping) -> tuple[dict, int]:
    """``(state with the original key names of every swapped layer in model renamed, count)``;
    ``state`` itself is left as it is."""
    out, count = dict(state), 0
    for name, module in model.named_modules():
        keys = getattr(module, "_attn_deploy_original_keys", None)
        if isinstance(keys, OriginalKeys):
            count += keys.apply(module, out, f"{name}." if name else "")
    return out, count


def _is_conv1x1(m: object) -> bool:
    return isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1 \
        and m.stride == (1, 1)


def _gamma_value(module: nn.Module) -> torch.Tensor | None:
    """mmcv's gamma: a Parameter of one element, or a ``Scale`` module with a ``scale`` one."""
    gamma = getattr(module, "gamma", None)
    if isinstance(gamma, nn.Module):
        gamma = getattr(gamma, "scale", None)
        if isinstance(gamma, nn.Module) or len(list(module.gamma.parameters())) != 1:
            return None
    if isinstance(gamma, torch.Tensor) and gamma.numel() == 1 and gamma.is_floating_point():
        return gamma.detach().reshape(1)
    return None


def _is_criss_cross(m: nn.Module) -> bool:
    q, k, v = (getattr(m, n, None) for n in ("query_conv", "key_conv", "value_conv"))
    if not all(_is_conv1x1(c) for c in (q, k, v)) or _gamma_value(m) is None:
        return False
    c = v.in_channels
    return (q.in_channels == k.in_channels == c == v.out_channels
            and q.out_channels == k.out_channels and not _has_other_parameters(
                m, ("query_conv", "key_conv", "value_conv", "gamma")))


def _has_other_parameters(m: nn.Module, children: tuple[str, ...]) -> bool:
    """A look-alike with extra learned state is not the layer we know how to replace."""
    return any(not name.split(".")[0] in children for name, _ in m.named_parameters())


def _swap_criss_cross(m: nn.Module) -> tuple[nn.Module, str]:
    from attn_deploy.modules.registry import create

    q = m.query_conv
    block = create("cca", channels=m.value_conv.in_channels, rd_channels=q.out_channels,
                   recurrence=1, gamma_init=0.0)
    state = {}
    for src, dst in (("query_conv", "query"), ("key_conv", "key"), ("value_conv", "value")):
        conv = getattr(m, src)
        state[f"{dst}.weight"] = conv.weight.detach()
        state[f"{dst}.bias"] = (conv.bias.detach() if conv.bias is not None
                                else torch.zeros(conv.out_channels))
    state["gamma"] = _gamma_value(m)
    block.load_state_dict(state, strict=True)
    renames = {f"{src}.{p}": f"{dst}.{p}" for src, dst in (("query_conv", "query"),
                                                            ("key_conv", "key"),
                                                            ("value_conv", "value"))
               for p in ("weight", "bias")}
    renames["gamma.scale" if isinstance(m.gamma, nn.Module) else "gamma"] = "gamma"
    zeros = tuple(f"{dst}.bias" for src, dst in (("query_conv", "query"), ("key_conv", "key"),
                                                  ("value_conv", "value"))
                  if getattr(m, src).bias is None)
    accept_original_keys(block, OriginalKeys(renames, zeros))
    return block, "block cca (recurrence=1)"


def _is_carafe_pack(m: nn.Module) -> bool:
    comp, enc = getattr(m, "channel_compressor", None), getattr(m, "content_encoder", None)
    attrs = [getattr(m, a, None) for a in ("scale_factor", "up_kernel", "up_group")]
    if not (_is_conv1x1(comp) and isinstance(enc, nn.Conv2d)) or \
            not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in attrs):
        return False
    s, k, g = attrs
    ke, dil = enc.kernel_size, enc.dilation
    return (comp.out_channels == enc.in_channels and enc.groups == 1 and enc.stride == (1, 1)
            and ke[0] == ke[1] and ke[0] % 2 == 1 and dil[0] == dil[1]
            and enc.padding == ((ke[0] - 1) * dil[0] // 2,) * 2 and enc.padding_mode == "zeros"
            and enc.out_channels == s * s * g * k * k and k % 2 == 1
            and comp.in_channels % g == 0 and comp.bias is not None and enc.bias is not None
            and not _has_other_parameters(m, ("channel_compressor", "content_encoder")))


def _swap_carafe_pack(m: nn.Module) -> tuple[nn.Module, str]:
    from attn_deploy.modules.registry import create

    comp, enc = m.channel_compressor, m.content_encoder
    block = create("carafe", channels=comp.in_channels, scale_factor=m.scale_factor,
                   up_kernel=m.up_kernel, up_group=m.up_group,
                   encoder_kernel=enc.kernel_size[0], encoder_dilation=enc.dilation[0],
                   compressed_channels=comp.out_channels)
    block.load_state_dict(m.state_dict(), strict=True)  # mmcv's key names: nothing to rename
    return block, (f"block carafe (scale {m.scale_factor}, k_up {m.up_kernel}, "
                   f"groups {m.up_group})")


def _pool_sizes(m: nn.Module) -> tuple:
    size = m.output_size
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def _is_adaptive_pool(m: nn.Module) -> bool:
    return type(m) in (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d) and \
        _pool_sizes(m) != (1, 1)


def _swap_adaptive_pool(m: nn.Module) -> tuple[nn.Module, str]:
    from attn_deploy.modules.adaptive_pool import AdaptivePool2d

    if isinstance(m, nn.AdaptiveMaxPool2d) and m.return_indices:
        raise _Skip("return_indices=True: the deploy-friendly pooling returns values only")
    mode = "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max"
    return AdaptivePool2d(_pool_sizes(m), mode), f"AdaptivePool2d({mode}, {_pool_sizes(m)})"


class _Skip(Exception):
    pass


# Probe inputs [N, C, H, W] for the equivalence check: odd, non-square sizes, so that a
# replacement that is only right for square or even inputs is caught.
def _probe_criss_cross(m: nn.Module) -> tuple[int, ...]:
    return (2, m.value_conv.in_channels, 5, 7)


def _probe_carafe(m: nn.Module) -> tuple[int, ...]:
    return (2, m.channel_compressor.in_channels, 5, 7)


def _probe_pool(m: nn.Module) -> tuple[int, ...]:
    h, w = (s or 1 for s in _pool_sizes(m))
    return (2, 3, 2 * h + 3, 2 * w + 5)


_TOLERANCE = 1e-5  # the pipeline's check_swaps: relative L2 over the output


def _equivalence(original: nn.Module, new: nn.Module, shape: tuple[int, ...]
                 ) -> tuple[bool, str]:
    """(agree, what was measured) for ``original`` and ``new`` on one random probe input."""
    like = next(iter(original.parameters()), None)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    if like is not None:
        x = x.to(device=like.device, dtype=like.dtype)
    with torch.no_grad():
        try:
            ref = original(x)
        except Exception as exc:  # user code that cannot run here (mmcv's compiled ops absent)
            return True, (f"not compared: the original does not run here "
                          f"({type(exc).__name__}: {str(exc)[:100]})")
        out = new(x)
    if not isinstance(ref, torch.Tensor) or not isinstance(out, torch.Tensor) \
            or ref.shape != out.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        want = tuple(ref.shape) if isinstance(ref, torch.Tensor) else type(ref).__name__
        return False, f"output {want} where the replacement gives {got}"
    ref64, out64 = ref.double(), out.double()
    if not torch.isfinite(ref64).all():
        return False, "the original gives non-finite values on a random input"
    rel = float((out64 - ref64).norm() / ref64.norm().clamp_min(1e-30))
    if not rel <= _TOLERANCE:
        return False, (f"relative L2 error {rel:.2e} between it and the replacement on a "
                       f"random input {tuple(shape)} (tolerance {_TOLERANCE:.0e})")
    return True, f"matches the original: relative L2 error {rel:.1e} at {tuple(shape)}"


# (name, recogniser, converter, why the original does not deploy, probe input shape)
_RULES: list[tuple[str, Callable[[nn.Module], bool], Callable, str, Callable]] = [
    ("criss-cross attention", _is_criss_cross, _swap_criss_cross,
     "einsum + torch.diag mask: 24 nodes; one attn_deploy::CrissCrossAttention node instead "
     "(its plugin under attn-deploy build-engine; trt-check says what TensorRT's own parser "
     "takes per version)", _probe_criss_cross),
    ("CARAFE", _is_carafe_pack, _swap_carafe_pack,
     "mmcv's compiled carafe does not export; one attn_deploy::CARAFE node instead (its plugin "
     "under attn-deploy build-engine; trt-check says what TensorRT's own parser takes per "
     "version)", _probe_carafe),
    ("adaptive pooling", _is_adaptive_pool, _swap_adaptive_pool,
     "exported with a kernel fixed to the example size, wrong at other sizes", _probe_pool),
]


def _replacement(m: nn.Module, check: bool
                 ) -> tuple[nn.Module | None, Swap | None, Swap | None]:
    if type(m).__module__.startswith("attn_deploy."):
        return None, None, None  # attn_deploy's own layers export as they are
    for name, recognise, convert, why, probe in _RULES:
        if recognise(m):
            try:
                new, what = convert(m)
            except _Skip as skip:
                return None, None, Swap("", type(m).__name__, "", str(skip))
            like = next(iter(m.parameters()), None)
            if like is not None:
                new = new.to(device=like.device, dtype=like.dtype)
            new.train(m.training)
            measured = ""
            if check:
                same, measured = _equivalence(m, new, probe(m))
                if not same:
                    return None, None, Swap(
                        "", type(m).__name__, "",
                        f"laid out like {name} but computes something else: {measured}; "
                        f"not replaced by {what}")
            return new, Swap("", type(m).__name__, what, why, measured), None
    return None, None, None


def deployable(model: nn.Module, *, inplace: bool = False,
               check: bool = True) -> tuple[nn.Module, DeployReport]:
    """Return ``(model with the known non-exportable layers replaced, report)``.

    ``check``: run each layer and its replacement on a probe input first and refuse (keep,
    report under ``skipped``) a layer whose numbers the replacement does not reproduce."""
    if not isinstance(model, nn.Module):
        raise AttnDeployError(f"deployable: expected an nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    report = DeployReport()

    def visit(module: nn.Module, path: str) -> nn.Module:
        new, swap, skip = _replacement(module, check)
        if skip is not None:
            report.skipped.append(Swap(path, skip.original, "", skip.reason))
        if new is not None:
            report.swaps.append(Swap(path, swap.original, swap.replacement, swap.reason,
                                     swap.check))
            return new  # a replaced layer's children are the replacement's business
        for name, child in list(module.named_children()):
            replaced = visit(child, f"{path}.{name}" if path else name)
            if replaced is not child:
                setattr(module, name, replaced)
        return module

    return visit(model, ""), report
