// Criss-cross attention forward on the CPU as batched matrix products (the BLAS torch links),
// for maps large enough that the per-pixel loops of criss_cross_cpu.cpp stream `value` from
// memory once per row.
#pragma once

#include <ATen/core/Tensor.h>

#include "criss_cross_math.h"

namespace attn_deploy {

// Whether the GEMM formulation is the faster one: once one batch item's value (C*H*W floats)
// outgrows the caches, which the per-pixel loops sweep once per row. Below that, the per-pixel
// loops avoid the GEMM path's layout copies and per-call overheads.
inline bool crissCrossPrefersBlas(const CrissCrossDims& d) {
  return int64_t(d.C) * d.plane() >= (int64_t(1) << 16);
}

// query, key [N, Cq, H, W], value [N, C, H, W] (contiguous, one floating dtype) -> [N, C, H, W].
at::Tensor crissCrossForwardBlas(const at::Tensor& query, const at::Tensor& key,
                                 const at::Tensor& value, const CrissCrossDims& d);

// Softmax of pixel (y, x) over its column energies column[0, H) and row energies row[0, W), in
// place. column[self] is the pixel itself, which the row already holds: it gets weight 0. Softmax
// semantics for non-finite energies (the reference's): NaN anywhere, or every energy -inf, gives
// NaN weights.
void crissCrossSoftmaxCpu(float* column, int H, int self, float* row, int W);

}  // namespace attn_deploy
