// Size limits of the CARAFE and criss-cross attention ops: one set for every path that runs them.
// The PyTorch op's argument check and the ONNX checks (attn_deploy/ops, which repeat these numbers
// and a test compares them with this file), the TensorRT plugin core (plugins/core) and the
// PyTorch extension's host checks (plugins/torch_ext/op_checks.h) all enforce exactly these.
#pragma once

#include <cstdint>

namespace attn_deploy::limits {

// CARAFE kernel_size k: odd, 1 <= k <= 255, so k*k taps stay below 2^16 and the mask channels
// group_size*k*k (which must fit in int32) cannot overflow 64-bit arithmetic.
inline constexpr int64_t kMaxKernelSize = 255;
// CARAFE scale_factor s: 1 <= s <= 64.
inline constexpr int64_t kMaxScaleFactor = 64;
// Elements of one channel plane (CARAFE's output H*s * W*s, criss-cross attention's H*W) must be
// below 2^27: the CPU kernels gather 16 SIMD lanes with 32-bit offsets within a plane.
inline constexpr int64_t kPlaneLimit = int64_t(1) << 27;

// a * b for non-negative a and b, or -1 when the product does not fit in int64.
inline int64_t checkedProduct(int64_t a, int64_t b) {
  int64_t product = 0;
  return __builtin_mul_overflow(a, b, &product) ? -1 : product;
}

}  // namespace attn_deploy::limits
