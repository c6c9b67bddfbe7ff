// CUDA launchers for criss-cross attention. Contiguous NCHW buffers on the device; T = float or
// __half (accumulation in float). Each returns cudaSuccess at once for empty input,
// cudaErrorInvalidValue for inconsistent arguments, else the launch status. Asynchronous on
// `stream`.
#pragma once

#include <cstddef>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

// Device workspace (bytes) launchCrissCrossAttention needs: the attention weights, float
// [N, H+W, H, W]. Never 0 for non-empty input.
size_t crissCrossAttentionWorkspaceSize(int N, int Cq, int C, int H, int W);

// query, key [N, Cq, H, W], value [N, C, H, W] -> output [N, C, H, W]. For each pixel, one softmax
// over the energies with the H+W-1 pixels of its column and row (itself once), then the weighted
// sum of value over them. `workspace`: crissCrossAttentionWorkspaceSize bytes, 256-byte aligned.
template <typename T>
cudaError_t launchCrissCrossAttention(const T* query, const T* key, const T* value, T* output,
                                      int N, int Cq, int C, int H, int W, void* workspace,
                                      cudaStream_t stream);

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
