// Grid-stride launch configuration shared by the .cu files (CUDA only).
#pragma once

#include <cstdint>

namespace attn_deploy {

constexpr int kThreads = 256;

// Enough blocks to cover `count` elements, capped: the kernels loop with a grid stride.
inline unsigned blocksFor(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return unsigned(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

__device__ __forceinline__ int64_t firstIndex() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t indexStride() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace attn_deploy
