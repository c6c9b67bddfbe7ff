// Argument checks shared by the CPU and CUDA registrations: every user mistake becomes a
// ValueError/TypeError that names the argument, what was expected and what was seen. Plus the
// float32/float16 dispatch that follows them.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <limits>
#include <string>

#include "carafe_math.h"
#include "criss_cross_math.h"
#include "op_limits.h"

namespace attn_deploy {

inline void checkFloatingRank4(const char* op, const char* name, const at::Tensor& t,
                               const char* layout) {
  TORCH_CHECK_VALUE(t.dim() == 4, op, ": ", name, " must be a 4-D tensor ", layout,
                    ", got shape ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kHalf, op, ": ", name,
                   " must be float32 or float16 (the native kernels accumulate in float32), got ",
                   t.scalar_type());
}

inline void checkSameKind(const char* op, const char* name, const at::Tensor& t,
                          const char* firstName, const at::Tensor& first) {
  TORCH_CHECK_TYPE(t.scalar_type() == first.scalar_type(), op, ": ", name,
                   " must have the dtype of ", firstName, " (", first.scalar_type(), "), got ",
                   t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == first.device(), op, ": ", name, " must be on the device of ",
                    firstName, " (", first.device(), "), got ", t.device());
}

inline void checkFitsInt32(const char* op, std::initializer_list<int64_t> sizes,
                           const at::Tensor& a, const at::Tensor& b) {
  for (int64_t size : sizes) {
    TORCH_CHECK_VALUE(size <= std::numeric_limits<int32_t>::max(), op,
                      ": sizes must fit in int32, got ", a.sizes(), " and ", b.sizes());
  }
}

// The kernels index within one channel plane with 32-bit ints (SIMD gathers use 16 lanes); the
// limit is the ops' (op_limits.h). plane < 0: the product overflowed int64.
inline void checkPlaneSize(const char* op, int64_t plane, const char* what) {
  TORCH_CHECK_VALUE(plane >= 0 && plane < limits::kPlaneLimit, op, ": ", what, " must be below "
                    "2^27 (the ops' limit per channel plane), got ",
                    plane < 0 ? std::string("more than 2^63") : std::to_string(plane));
}

inline CarafeDims checkCarafe(const char* op, const at::Tensor& features, const at::Tensor& masks,
                              int64_t kernelSize, int64_t groupSize, int64_t scaleFactor) {
  checkFloatingRank4(op, "features", features, "[N, C, H, W]");
  checkFloatingRank4(op, "masks", masks,
                     "[N, group_size*kernel_size^2, H*scale_factor, W*scale_factor]");
  checkSameKind(op, "masks", masks, "features", features);
  TORCH_CHECK_VALUE(kernelSize >= 1 && kernelSize % 2 == 1 && kernelSize <= limits::kMaxKernelSize,
                    op, ": kernel_size must be odd and in [1, ", limits::kMaxKernelSize, "], got ",
                    kernelSize);
  TORCH_CHECK_VALUE(scaleFactor >= 1 && scaleFactor <= limits::kMaxScaleFactor, op,
                    ": scale_factor must be in [1, ", limits::kMaxScaleFactor, "], got ",
                    scaleFactor);
  const int64_t N = features.size(0), C = features.size(1), H = features.size(2),
                W = features.size(3);
  TORCH_CHECK_VALUE(groupSize >= 1 && C % groupSize == 0, op,
                    ": group_size must be >= 1 and divide the channels of features (", C,
                    "), got ", groupSize);
  // Sizes as the kernels see them; checked products (-1 on overflow never matches a size).
  const int64_t taps = limits::checkedProduct(groupSize, kernelSize * kernelSize);
  const int64_t outH = limits::checkedProduct(H, scaleFactor);
  const int64_t outW = limits::checkedProduct(W, scaleFactor);
  const bool masksFit = masks.size(0) == N && masks.size(1) == taps && masks.size(2) == outH &&
                        masks.size(3) == outW;
  TORCH_CHECK_VALUE(masksFit, op, ": masks must have shape [N, group_size*kernel_size^2, "
                    "H*scale_factor, W*scale_factor] = [", N, ", ", taps, ", ", outH, ", ", outW,
                    "] for features of shape ", features.sizes(), ", got ",
                    masks.sizes());
  checkFitsInt32(op, {N, C, taps}, features, masks);
  checkPlaneSize(op, limits::checkedProduct(outH, outW), "H*W*scale_factor^2");
  return CarafeDims{int(N), int(C), int(H), int(W), int(kernelSize), int(groupSize),
                    int(scaleFactor)};
}

inline void checkCarafeGrad(const char* op, const at::Tensor& gradOutput,
                            const at::Tensor& features, const CarafeDims& d) {
  checkFloatingRank4(op, "grad_output", gradOutput, "[N, C, H*scale_factor, W*scale_factor]");
  checkSameKind(op, "grad_output", gradOutput, "features", features);
  const bool fits = gradOutput.size(0) == d.N && gradOutput.size(1) == d.C &&
                    gradOutput.size(2) == d.outH() && gradOutput.size(3) == d.outW();
  TORCH_CHECK_VALUE(fits, op, ": grad_output must have the output's shape [", d.N, ", ", d.C,
                    ", ", d.outH(), ", ", d.outW(), "], got ", gradOutput.sizes());
}

inline CrissCrossDims checkCrissCross(const char* op, const at::Tensor& query,
                                      const at::Tensor& key, const at::Tensor& value) {
  checkFloatingRank4(op, "query", query, "[N, Cq, H, W]");
  checkFloatingRank4(op, "key", key, "[N, Cq, H, W]");
  checkFloatingRank4(op, "value", value, "[N, C, H, W]");
  checkSameKind(op, "key", key, "query", query);
  checkSameKind(op, "value", value, "query", query);
  TORCH_CHECK_VALUE(key.sizes() == query.sizes(), op, ": key must have the shape of query ",
                    query.sizes(), ", got ", key.sizes());
  const bool fits = value.size(0) == query.size(0) && value.size(2) == query.size(2) &&
                    value.size(3) == query.size(3);
  TORCH_CHECK_VALUE(fits, op, ": value must be [N, C, H, W] with the N, H, W of query ",
                    query.sizes(), ", got ", value.sizes());
  checkFitsInt32(op, {query.size(0), query.size(1), value.size(1)}, query, value);
  const int64_t H = query.size(2), W = query.size(3);
  checkPlaneSize(op, limits::checkedProduct(H, W), "H*W");
  return CrissCrossDims{int(query.size(0)), int(query.size(1)), int(value.size(1)), int(H),
                        int(W)};
}

inline void checkCrissCrossGrad(const char* op, const at::Tensor& gradOutput,
                                const at::Tensor& value) {
  checkFloatingRank4(op, "grad_output", gradOutput, "[N, C, H, W]");
  checkSameKind(op, "grad_output", gradOutput, "value", value);
  TORCH_CHECK_VALUE(gradOutput.sizes() == value.sizes(), op,
                    ": grad_output must have the output's (= value's) shape ", value.sizes(),
                    ", got ", gradOutput.sizes());
}

// fn(float{}) or fn(c10::Half{}) by dtype (the checks above allow only these two).
template <typename Fn>
void dispatchFloatOrHalf(at::ScalarType type, const Fn& fn) {
  if (type == at::kFloat) {
    fn(float{});
  } else {
    fn(c10::Half{});
  }
}

}  // namespace attn_deploy
