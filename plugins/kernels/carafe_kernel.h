// CUDA launchers for CARAFE. Contiguous NCHW buffers on the device; T = float or __half
// (accumulation in float). Each returns cudaSuccess at once for empty input,
// cudaErrorInvalidValue for inconsistent arguments, else the launch status. Asynchronous on
// `stream`.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

// features [N, C, H, W], masks [N, G*k*k, H*s, W*s] -> output [N, C, H*s, W*s], with
// k = kernelSize (odd), G = groupSize (divides C), s = scaleFactor (>= 1).
template <typename T>
cudaError_t launchCarafe(const T* features, const T* masks, T* output, int N, int C, int H, int W,
                         int kernelSize, int groupSize, int scaleFactor, cudaStream_t stream);

// Gradients of launchCarafe: gradOutput [N, C, H*s, W*s] -> gradFeatures [N, C, H, W] and
// gradMasks [N, G*k*k, H*s, W*s]. Both are overwritten (no accumulation into existing values).
template <typename T>
cudaError_t launchCarafeBackward(const T* gradOutput, const T* features, const T* masks,
                                 T* gradFeatures, T* gradMasks, int N, int C, int H, int W,
                                 int kernelSize, int groupSize, int scaleFactor,
                                 cudaStream_t stream);
