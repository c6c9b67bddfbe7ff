// CUDA kernels for criss-cross attention: one thread per pixel for the softmax (and its backward),
// one thread per output element for the weighted sums, each calling the shared functions of
// criss_cross_math.h (the CPU build runs the same functions).
#include "criss_cross_kernel.h"

#include "criss_cross_math.h"
#include "launch_config.h"

namespace attn_deploy {
namespace {

// Attention weights of every pixel -> weights [N, H+W, H, W].
template <typename T>
__global__ void crissCrossWeightsKernel(const T* query, const T* key, float* weights,
                                        CrissCrossDims d) {
  const int64_t plane = d.plane(), total = int64_t(d.N) * plane;
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int n = int(idx / plane), y = int(idx % plane / d.W), x = int(idx % d.W);
    const int64_t qk = int64_t(n) * d.Cq * plane;
    crissCrossWeightsAt<float>(query + qk, key + qk, d, y, x,
                               weights + int64_t(n) * d.positions() * plane + int64_t(y) * d.W,
                               plane);
  }
}

// out[n, c, y, x] = sum_p weights[n, p, y, x] * source[n, c, position p]; `channels` = C of source.
template <typename T>
__global__ void crissCrossGatherKernel(const float* weights, const T* source, T* output,
                                       int channels, CrissCrossDims d) {
  const int64_t plane = d.plane(), total = int64_t(d.N) * channels * plane;
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int64_t nc = idx / plane;
    const int n = int(nc / channels), y = int(idx % plane / d.W), x = int(idx % d.W);
    const float* w = weights + int64_t(n) * d.positions() * plane + int64_t(y) * d.W;
    float out;
    crissCrossGatherAt<float, 1>(w, plane, source + nc * plane, plane, d, y, x, &out);
    output[idx] = fromFloat<T>(out);
  }
}

// Per pixel: attention weights again, then d loss / d energy.
template <typename T>
__global__ void crissCrossEnergyGradKernel(const T* gradOutput, const T* query, const T* key,
                                           const T* value, float* weights, float* energyGrad,
                                           CrissCrossDims d) {
  const int64_t plane = d.plane(), total = int64_t(d.N) * plane;
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int n = int(idx / plane), y = int(idx % plane / d.W), x = int(idx % d.W);
    const int64_t rowOffset = int64_t(n) * d.positions() * plane + int64_t(y) * d.W;
    const int64_t qk = int64_t(n) * d.Cq * plane, vo = int64_t(n) * d.C * plane;
    crissCrossWeightsAt<float>(query + qk, key + qk, d, y, x, weights + rowOffset, plane);
    crissCrossEnergyGradAt<float>(weights + rowOffset, gradOutput + vo, value + vo, d, y, x,
                                  energyGrad + rowOffset, plane);
  }
}

// grad value (channels [0, C): attention x grad output) and grad key (channels [C, C+Cq): energy
// gradient x query), gathered per position.
template <typename T>
__global__ void crissCrossScatterKernel(const float* weights, const float* energyGrad,
                                        const T* gradOutput, const T* query, T* gradValue,
                                        T* gradKey, CrissCrossDims d) {
  // C + Cq in 64 bits: each fits in int32, their sum need not.
  const int64_t channels = int64_t(d.C) + d.Cq;
  const int64_t plane = d.plane(), total = int64_t(d.N) * channels * plane;
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int64_t nc = idx / plane;
    const int n = int(nc / channels), c = int(nc % channels);
    const int y = int(idx % plane / d.W), x = int(idx % d.W);
    const int64_t workspaceOffset = int64_t(n) * d.positions() * plane;
    const bool valueChannel = c < d.C;
    const float* w = (valueChannel ? weights : energyGrad) + workspaceOffset;
    const float* rowWeights = w + d.H * plane + int64_t(y) * d.W;
    if (valueChannel) {
      const int64_t at = (int64_t(n) * d.C + c) * plane;
      gradValue[at + idx % plane] = fromFloat<T>(
          crissCrossScatterAt<float>(w, rowWeights, 1, plane, gradOutput + at, d, y, x));
    } else {
      const int64_t at = (int64_t(n) * d.Cq + (c - d.C)) * plane;
      gradKey[at + idx % plane] = fromFloat<T>(
          crissCrossScatterAt<float>(w, rowWeights, 1, plane, query + at, d, y, x));
    }
  }
}

int64_t weightCount(int N, int H, int W) { return int64_t(N) * (int64_t(H) + W) * H * W; }

bool crissCrossArgumentsValid(int N, int Cq, int C, int H, int W) {
  return N >= 0 && Cq >= 0 && C >= 0 && H >= 0 && W >= 0;
}

}  // namespace
}  // namespace attn_deploy

using attn_deploy::CrissCrossDims;

size_t crissCrossAttentionWorkspaceSize(int N, int Cq, int C, int H, int W) {
  if (!attn_deploy::crissCrossArgumentsValid(N, Cq, C, H, W)) return 0;
  return size_t(attn_deploy::weightCount(N, H, W)) * sizeof(float);
}

size_t crissCrossAttentionBackwardWorkspaceSize(int N, int Cq, int C, int H, int W) {
  return 2 * crissCrossAttentionWorkspaceSize(N, Cq, C, H, W);
}

template <typename T>
cudaError_t launchCrissCrossAttention(const T* query, const T* key, const T* value, T* output,
                                      int N, int Cq, int C, int H, int W, void* workspace,
                                      cudaStream_t stream) {
  using namespace attn_deploy;
  if (!crissCrossArgumentsValid(N, Cq, C, H, W)) return cudaErrorInvalidValue;
  const CrissCrossDims d{N, Cq, C, H, W};
  const int64_t pixels = int64_t(N) * d.plane();
  if (pixels == 0 || C == 0) return cudaSuccess;
  if ((Cq > 0 && (query == nullptr || key == nullptr)) || value == nullptr || output == nullptr ||
      workspace == nullptr) {
    return cudaErrorInvalidValue;
  }
  float* weights = static_cast<float*>(workspace);
  crissCrossWeightsKernel<T><<<blocksFor(pixels), kThreads, 0, stream>>>(query, key, weights, d);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  crissCrossGatherKernel<T><<<blocksFor(pixels * C), kThreads, 0, stream>>>(weights, value,
                                                                            output, C, d);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launchCrissCrossAttentionBackward(const T* gradOutput, const T* query, const T* key,
                                              const T* value, T* gradQuery, T* gradKey,
                                              T* gradValue, int N, int Cq, int C, int H, int W,
                                              void* workspace, cudaStream_t stream) {
  using namespace attn_deploy;
  if (!crissCrossArgumentsValid(N, Cq, C, H, W)) return cudaErrorInvalidValue;
  const CrissCrossDims d{N, Cq, C, H, W};
  const int64_t pixels = int64_t(N) * d.plane();
  const int64_t channels = int64_t(C) + Cq;  // may exceed int32
  if (pixels == 0 || channels == 0) return cudaSuccess;
  const bool queryKeyMissing =
      query == nullptr || key == nullptr || gradQuery == nullptr || gradKey == nullptr;
  const bool valueMissing = gradOutput == nullptr || value == nullptr || gradValue == nullptr;
  if ((Cq > 0 && queryKeyMissing) || (C > 0 && valueMissing) || workspace == nullptr) {
    return cudaErrorInvalidValue;
  }
  float* weights = static_cast<float*>(workspace);
  float* energyGrad = weights + weightCount(N, H, W);
  crissCrossEnergyGradKernel<T><<<blocksFor(pixels), kThreads, 0, stream>>>(
      gradOutput, query, key, value, weights, energyGrad, d);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  if (Cq > 0) {
    crissCrossGatherKernel<T><<<blocksFor(pixels * Cq), kThreads, 0, stream>>>(
        energyGrad, key, gradQuery, Cq, d);
    status = cudaGetLastError();
    if (status != cudaSuccess) return status;
  }
  crissCrossScatterKernel<T><<<blocksFor(pixels * channels), kThreads, 0, stream>>>(
      weights, energyGrad, gradOutput, query, gradValue, gradKey, d);
  return cudaGetLastError();
}

template cudaError_t launchCrissCrossAttention<float>(const float*, const float*, const float*,
                                                      float*, int, int, int, int, int, void*,
                                                      cudaStream_t);
template cudaError_t launchCrissCrossAttention<__half>(const __half*, const __half*, const __half*,
                                                       __half*, int, int, int, int, int, void*,
                                                       cudaStream_t);
template cudaError_t launchCrissCrossAttentionBackward<float>(
    const float*, const float*, const float*, const float*, float*, float*, float*, int, int, int,
    int, int, void*, cudaStream_t);
template cudaError_t launchCrissCrossAttentionBackward<__half>(
    const __half*, const __half*, const __half*, const __half*, __half*, __half*, __half*, int,
    int, int, int, int, void*, cudaStream_t);
