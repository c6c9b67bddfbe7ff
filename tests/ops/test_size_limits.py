"""One set of size limits for the ops (issue 13): the Python op contract, the PyTorch op's argument
check (reference and native paths alike), the native extension and the C++ headers that the
plugin core and the kernels read (plugins/kernels/op_limits.h) all say the same."""
import re
from pathlib import Path

import pytest
import torch

from attn_deploy import op_contract
from attn_deploy.errors import AttnDeployError
from attn_deploy.ops import (carafe, carafe_reference, criss_cross_attention,
                             criss_cross_attention_reference)

OP_LIMITS_H = Path(__file__).resolve().parents[2] / "plugins" / "kernels" / "op_limits.h"


def test_python_limits_are_the_cpp_header_s():
    text = OP_LIMITS_H.read_text()

    def constant(name):
        match = re.search(rf"constexpr int64_t {name} = (.+?);", text)
        assert match, f"{name} not in {OP_LIMITS_H}"
        return eval(match.group(1).replace("int64_t(1)", "1"), {})  # "255", "int64_t(1) << 27"

    assert constant("kMaxKernelSize") == op_contract.MAX_KERNEL_SIZE == 255
    assert constant("kMaxScaleFactor") == op_contract.MAX_SCALE_FACTOR == 64
    assert constant("kPlaneLimit") == op_contract.PLANE_LIMIT == 2 ** 27


@pytest.mark.parametrize("k,s,message", [
    (257, 1, "kernel_size must be at most 255 (the ops' size limit), got 257"),
    (1, 65, "scale_factor must be at most 64 (the ops' size limit), got 65"),
])
def test_carafe_attributes_beyond_the_limits_are_refused_on_every_path(k, s, message):
    """The reference once accepted what only the native kernels refused (with a C++ error)."""
    f, m = torch.randn(1, 1, 1, 1), torch.randn(1, k * k, s, s)
    for op in (carafe, carafe_reference):
        with pytest.raises(AttnDeployError, match=re.escape(message)):
            op(f, m, k, 1, s)


def test_carafe_at_the_scale_limit_runs_and_agrees():
    f, m = torch.randn(1, 2, 2, 3), torch.randn(1, 9, 128, 192)
    torch.testing.assert_close(carafe(f, m, 3, 1, 64), carafe_reference(f, m, 3, 1, 64))


def test_plane_limits_refuse_before_allocating():
    """Meta tensors: shapes at and beyond 2^27 elements per plane, no memory."""
    meta = dict(device="meta")
    f, m = torch.empty(1, 1, 8192, 8192, **meta), torch.empty(1, 1, 16384, 16384, **meta)
    for op in (carafe, carafe_reference):
        with pytest.raises(AttnDeployError, match=r"H\*W\*scale_factor\^2 = 8192\*8192\*2\^2 = "
                                                  r"268435456 must be below 2\^27"):
            op(f, m, 1, 1, 2)
    q = torch.empty(1, 1, 8192, 16384, **meta)
    for op in (criss_cross_attention, criss_cross_attention_reference):
        with pytest.raises(AttnDeployError, match=r"H\*W = 8192\*16384 = 134217728 must be below"):
            op(q, q, q)
    below = torch.empty(1, 1, 8192, 16383, **meta)
    assert criss_cross_attention(below, below, below).shape == below.shape  # meta: shape only


def test_mask_channel_product_is_checked_exactly():
    errors = op_contract.carafe_attribute_errors(
        {"kernel_size": 255, "group_size": 2 ** 20, "scale_factor": 1})
    assert errors == ["group_size * kernel_size^2 = 1048576 * 255^2 = 68183654400 mask channels "
                      "does not fit in int32"]
    assert op_contract.carafe_attribute_errors(
        {"kernel_size": 255, "group_size": 33025, "scale_factor": 64}) == []
