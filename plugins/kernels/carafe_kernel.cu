// CUDA kernels for CARAFE: one thread per output element, each calling the shared per-element
// function of carafe_math.h (the CPU build runs the same function).
#include "carafe_kernel.h"

#include "carafe_math.h"
#include "launch_config.h"

namespace attn_deploy {
namespace {

// &masks[n, g*k*k, 0, 0] for the group g of channel c.
template <typename T>
__device__ __forceinline__ const T* maskGroupOf(const T* masks, int n, int c, const CarafeDims& d) {
  const int g = c / d.channelsPerGroup();
  return masks + (int64_t(n) * d.groupSize + g) * d.taps() * d.outPlane();
}

template <typename T>
__global__ void carafeForwardKernel(const T* features, const T* masks, T* output, CarafeDims d) {
  const int outH = d.outH(), outW = d.outW();
  const int64_t total = int64_t(d.N) * d.C * d.outPlane();
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int x = int(idx % outW);
    const int y = int(idx / outW % outH);
    const int64_t nc = idx / d.outPlane();
    const int c = int(nc % d.C), n = int(nc / d.C);
    const T* maskTaps = maskGroupOf(masks, n, c, d) + int64_t(y) * outW;
    output[idx] = fromFloat<T>(
        carafeOutputAt<float>(features + nc * d.inPlane(), maskTaps, d.outPlane(), d, y, x));
  }
}

template <typename T>
__global__ void carafeGradFeaturesKernel(const T* gradOutput, const T* masks, T* gradFeatures,
                                         CarafeDims d) {
  const int64_t total = int64_t(d.N) * d.C * d.inPlane();
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int fx = int(idx % d.W);
    const int fy = int(idx / d.W % d.H);
    const int64_t nc = idx / d.inPlane();
    const int c = int(nc % d.C), n = int(nc / d.C);
    gradFeatures[idx] = fromFloat<T>(carafeGradFeatureAt<float>(
        gradOutput + nc * d.outPlane(), maskGroupOf(masks, n, c, d), d, fy, fx));
  }
}

template <typename T>
__global__ void carafeGradMasksKernel(const T* gradOutput, const T* features, T* gradMasks,
                                      CarafeDims d) {
  const int outH = d.outH(), outW = d.outW(), taps = d.taps();
  const int64_t total = int64_t(d.N) * d.groupSize * taps * d.outPlane();
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int x = int(idx % outW);
    const int y = int(idx / outW % outH);
    const int64_t channel = idx / d.outPlane();  // n * G*k*k + g * k*k + tap
    const int tap = int(channel % taps);
    const int64_t firstChannel = channel / taps * d.channelsPerGroup();  // n * C + g * C/G
    gradMasks[idx] = fromFloat<T>(carafeGradMaskAt<float>(
        gradOutput + firstChannel * d.outPlane() + int64_t(y) * outW, d.outPlane(),
        features + firstChannel * d.inPlane(), d, tap, y, x));
  }
}

bool carafeArgumentsValid(const CarafeDims& d) {
  return d.N >= 0 && d.C >= 0 && d.H >= 0 && d.W >= 0 && d.kernelSize >= 1 &&
         d.kernelSize % 2 == 1 && d.groupSize >= 1 && d.C % d.groupSize == 0 && d.scaleFactor >= 1;
}

}  // namespace
}  // namespace attn_deploy

template <typename T>
cudaError_t launchCarafe(const T* features, const T* masks, T* output, int N, int C, int H, int W,
                         int kernelSize, int groupSize, int scaleFactor, cudaStream_t stream) {
  using namespace attn_deploy;
  const CarafeDims d{N, C, H, W, kernelSize, groupSize, scaleFactor};
  if (!carafeArgumentsValid(d)) return cudaErrorInvalidValue;
  const int64_t total = int64_t(N) * C * d.outPlane();
  if (total == 0) return cudaSuccess;
  if (features == nullptr || masks == nullptr || output == nullptr) return cudaErrorInvalidValue;
  carafeForwardKernel<T><<<blocksFor(total), kThreads, 0, stream>>>(features, masks, output, d);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launchCarafeBackward(const T* gradOutput, const T* features, const T* masks,
                                 T* gradFeatures, T* gradMasks, int N, int C, int H, int W,
                                 int kernelSize, int groupSize, int scaleFactor,
                                 cudaStream_t stream) {
  using namespace attn_deploy;
  const CarafeDims d{N, C, H, W, kernelSize, groupSize, scaleFactor};
  if (!carafeArgumentsValid(d)) return cudaErrorInvalidValue;
  const int64_t featureCount = int64_t(N) * C * d.inPlane();
  const int64_t maskCount = int64_t(N) * groupSize * d.taps() * d.outPlane();
  if (maskCount == 0) return cudaSuccess;  // N, H or W is 0: nothing to write
  // C = 0: features, gradOutput and gradFeatures are empty (possibly null); gradMasks is all 0.
  const bool channelsMissing =
      gradOutput == nullptr || features == nullptr || gradFeatures == nullptr;
  if ((featureCount > 0 && channelsMissing) || masks == nullptr || gradMasks == nullptr) {
    return cudaErrorInvalidValue;
  }
  if (featureCount > 0) {
    carafeGradFeaturesKernel<T><<<blocksFor(featureCount), kThreads, 0, stream>>>(
        gradOutput, masks, gradFeatures, d);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) return status;
  }
  carafeGradMasksKernel<T><<<blocksFor(maskCount), kThreads, 0, stream>>>(gradOutput, features,
                                                                          gradMasks, d);
  return cudaGetLastError();
}

template cudaError_t launchCarafe<float>(const float*, const float*, float*, int, int, int, int,
                                         int, int, int, cudaStream_t);
template cudaError_t launchCarafe<__half>(const __half*, const __half*, __half*, int, int, int, int,
                                          int, int, int, cudaStream_t);
template cudaError_t launchCarafeBackward<float>(const float*, const float*, const float*, float*,
                                                 float*, int, int, int, int, int, int, int,
                                                 cudaStream_t);
template cudaError_t launchCarafeBackward<__half>(const __half*, const __half*, const __half*,
                                                  __half*, __half*, int, int, int, int, int, int,
                                                  int, cudaStream_t);
