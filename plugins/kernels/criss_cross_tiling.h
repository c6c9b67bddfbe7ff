// How launchCrissCrossAttention splits a batch so that its attention weights fit a workspace of
// bounded size (plain C++: the launcher, the TensorRT plugin and the host tests share it).
//
// The weights of a tile are float [items, H+W, rows, W]: `items` whole batch items (rows = H), or,
// when one item alone exceeds the budget, `rows` pixel rows of one item (items = 1). Never less
// than one row of one item, which the workspace must therefore always hold.
#pragma once

#include <cstddef>
#include <cstdint>

// Workspace budget (MiB) of the criss-cross attention forward on the GPU (TensorRT plugin and
// PyTorch CUDA path). A build-time option (CMake ATTN_DEPLOY_CCA_WORKSPACE_MIB), not a run-time
// one: an engine's workspace is sized when it is built and the kernels must tile the same way
// whenever it runs.
#ifndef ATTN_DEPLOY_CCA_WORKSPACE_MIB
#define ATTN_DEPLOY_CCA_WORKSPACE_MIB 256
#endif

namespace attn_deploy {

inline constexpr int64_t kCrissCrossWorkspaceBudget = int64_t(ATTN_DEPLOY_CCA_WORKSPACE_MIB) << 20;

// Bytes of the weights of one pixel row of one item: (H+W) * W floats.
inline int64_t crissCrossRowBytes(int64_t H, int64_t W) {
  return (H + W) * W * int64_t(sizeof(float));
}

// Workspace for an N x H x W batch under `budget` bytes: all of [N, H+W, H, W] if it fits, else
// the budget, but at least one row. Monotone in N, H and W, so the size TensorRT reserves for a
// profile's largest shapes also covers every smaller shape the engine later runs.
inline int64_t crissCrossWorkspaceBytes(int64_t N, int64_t H, int64_t W, int64_t budget) {
  const int64_t row = crissCrossRowBytes(H, W);
  const int64_t all = N * H * row;
  const int64_t bounded = budget > row ? budget : row;
  return all < bounded ? all : bounded;
}

struct CrissCrossTiling {
  int64_t items;  // batch items per tile
  int64_t rows;   // pixel rows per tile (H when items > 1)
};

// The largest tiles whose weights fit in `workspaceBytes`; {0, 0} when not even one row fits.
// N, H, W >= 1.
inline CrissCrossTiling crissCrossTiling(int64_t N, int64_t H, int64_t W,
                                         int64_t workspaceBytes) {
  const int64_t row = crissCrossRowBytes(H, W), item = row * H;
  if (workspaceBytes < row) return {0, 0};
  if (workspaceBytes >= item) {
    const int64_t items = workspaceBytes / item;
    return {items < N ? items : N, H};
  }
  return {1, workspaceBytes / row};
}

}  // namespace attn_deploy
