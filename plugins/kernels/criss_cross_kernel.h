// CUDA launchers for criss-cross attention. Contiguous NCHW buffers on the device; T = float or
// __half (accumulation in float). Each returns cudaSuccess at once for empty input,
// cudaErrorInvalidValue for inconsistent arguments, else the launch status. Asynchronous on
// `stream`.
#pragma once

#include <cstddef>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "criss_cross_tiling.h"

// Device workspace (bytes) for launchCrissCrossAttention: the attention weights float
// [N, H+W, H, W] when they fit in `budget` bytes, else `budget` (the launcher then runs the batch
// in tiles of whole items or of pixel rows, criss_cross_tiling.h), but at least one pixel row of
// one item, (H+W)*W floats. Monotone in N, H, W: the size for a profile's largest shapes covers
// all smaller ones. 0 only for empty input.
size_t crissCrossAttentionWorkspaceSize(int N, int Cq, int C, int H, int W,
                                        size_t budget = size_t(attn_deploy::kCrissCrossWorkspaceBudget));

// query, key [N, Cq, H, W], value [N, C, H, W] -> output [N, C, H, W]. For each pixel, one softmax
// over the energies with the H+W-1 pixels of its column and row (itself once), then the weighted
// sum of value over them. `workspace`: `workspaceBytes` bytes, 256-byte aligned, at least
// crissCrossAttentionWorkspaceSize(N, Cq, C, H, W, any budget) (else cudaErrorInvalidValue); the
// tiles are as large as it allows.
template <typename T>
cudaError_t launchCrissCrossAttention(const T* query, const T* key, const T* value, T* output,
                                      int N, int Cq, int C, int H, int W, void* workspace,
                                      size_t workspaceBytes, cudaStream_t stream);

// Device workspace (bytes) launchCrissCrossAttentionBackward needs: attention weights and energy
// gradients, float [2, N, H+W, H, W].
size_t crissCrossAttentionBackwardWorkspaceSize(int N, int Cq, int C, int H, int W);

// Gradients of launchCrissCrossAttention (the softmax is recomputed): gradOutput [N, C, H, W] ->
// gradQuery, gradKey [N, Cq, H, W] and gradValue [N, C, H, W], all overwritten.
template <typename T>
cudaError_t launchCrissCrossAttentionBackward(const T* gradOutput, const T* query, const T* key,
                                              const T* value, T* gradQuery, T* gradKey,
                                              T* gradValue, int N, int Cq, int C, int H, int W,
                                              void* workspace, cudaStream_t stream);
