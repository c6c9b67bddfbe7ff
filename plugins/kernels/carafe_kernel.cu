// CUDA kernels for CARAFE, each thread calling a shared function of carafe_math.h (the host tests
// and the CPU backward run the same functions). Forward: a thread per output pixel pair and chunk
// of channels (masks loaded once per chunk); backward: one thread per gradient element.
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

// Channels per forward thread: each mask value a thread loads serves this many.
constexpr int kCarafeChannels = 8;

// One thread = PX neighbouring output pixels (PX = 2 when the output width is even: pair loads and
// stores) x up to kCarafeChannels channels of one group, looping over them innermost with each
// mask value loaded once. Consecutive threads take consecutive pixels, so mask loads and output
// stores are coalesced.
template <typename T, int PX>
__global__ void carafeForwardKernel(const T* features, const T* masks, T* output, CarafeDims d) {
  constexpr int CB = kCarafeChannels;
  const int outH = d.outH(), outW = d.outW(), xSteps = outW / PX;
  const int cpg = d.channelsPerGroup(), chunks = (cpg + CB - 1) / CB;
  const int64_t outPlane = d.outPlane();
  const int64_t total = int64_t(d.N) * d.groupSize * chunks * outH * xSteps;
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int x = int(idx % xSteps) * PX;
    int64_t rest = idx / xSteps;
    const int y = int(rest % outH);
    rest /= outH;
    const int chunk = int(rest % chunks);
    rest /= chunks;
    const int g = int(rest % d.groupSize), n = int(rest / d.groupSize);
    const int c0 = g * cpg + chunk * CB;
    const int count = cpg - chunk * CB < CB ? cpg - chunk * CB : CB;
    const T* maskPixel = masks + (int64_t(n) * d.groupSize + g) * d.taps() * outPlane +
                         int64_t(y) * outW + x;
    float out[CB][PX];
    carafeOutputChannels<CB, PX>(features + (int64_t(n) * d.C + c0) * d.inPlane(), count,
                                 maskPixel, outPlane, d, y, x, out);
    T* o = output + (int64_t(n) * d.C + c0) * outPlane + int64_t(y) * outW + x;
    for (int b = 0; b < count; ++b) {
      if constexpr (PX == 2) {
        storePair(o + b * outPlane, out[b][0], out[b][1]);
      } else {
        o[b * outPlane] = fromFloat<T>(out[b][0]);
      }
    }
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
  const int64_t threads = total / d.channelsPerGroup() *
                          ((d.channelsPerGroup() + kCarafeChannels - 1) / kCarafeChannels);
  if (d.outW() % 2 == 0) {  // even rows: every pixel pair is 2-element aligned
    carafeForwardKernel<T, 2><<<blocksFor(threads / 2), kThreads, 0, stream>>>(features, masks,
                                                                               output, d);
  } else {
    carafeForwardKernel<T, 1><<<blocksFor(threads), kThreads, 0, stream>>>(features, masks,
                                                                           output, d);
  }
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
