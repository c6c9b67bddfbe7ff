// CUDA registration of the native ops (schemas in ops.cpp): argument checks, contiguous inputs,
// a device guard and the current stream, then the launchers of plugins/kernels -- the same
// launchers the TensorRT plugins call. Compiled only when torch and nvcc have CUDA.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "carafe_kernel.h"
#include "criss_cross_kernel.h"
#include "op_checks.h"

namespace attn_deploy {
namespace {

// c10::Half and __half share their bit layout; the launchers are instantiated for __half.
template <typename T>
struct DeviceType {
  using type = T;
};
template <>
struct DeviceType<c10::Half> {
  using type = __half;
};

template <typename T>
const typename DeviceType<T>::type* ptr(const at::Tensor& t) {
  return reinterpret_cast<const typename DeviceType<T>::type*>(t.const_data_ptr<T>());
}

template <typename T>
typename DeviceType<T>::type* mutablePtr(at::Tensor& t) {
  return reinterpret_cast<typename DeviceType<T>::type*>(t.mutable_data_ptr<T>());
}

at::Tensor zerosLike(const at::Tensor& t) { return at::zeros(t.sizes(), t.options()); }

void checkLaunch(const char* op, cudaError_t status) {
  TORCH_CHECK(status == cudaSuccess, op, ": CUDA kernel launch failed: ",
              cudaGetErrorString(status));
}

at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return at::empty({int64_t(bytes)}, like.options().dtype(at::kByte));
}

at::Tensor carafeForwardCudaOp(const at::Tensor& features, const at::Tensor& masks,
                               int64_t kernelSize, int64_t groupSize, int64_t scaleFactor) {
  const char* op = "carafe_forward";
  const CarafeDims d = checkCarafe(op, features, masks, kernelSize, groupSize, scaleFactor);
  const c10::cuda::CUDAGuard guard(features.device());
  at::Tensor output = at::empty({d.N, d.C, d.outH(), d.outW()}, features.options());
  if (output.numel() == 0) return output;
  const at::Tensor f = features.contiguous(), m = masks.contiguous();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatchFloatOrHalf(f.scalar_type(), [&](auto type) {
    using T = decltype(type);
    checkLaunch(op, launchCarafe(ptr<T>(f), ptr<T>(m), mutablePtr<T>(output), d.N, d.C, d.H, d.W,
                                 d.kernelSize, d.groupSize, d.scaleFactor, stream));
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor> carafeBackwardCudaOp(const at::Tensor& gradOutput,
                                                        const at::Tensor& features,
                                                        const at::Tensor& masks, int64_t kernelSize,
                                                        int64_t groupSize, int64_t scaleFactor) {
  const char* op = "carafe_backward";
  const CarafeDims d = checkCarafe(op, features, masks, kernelSize, groupSize, scaleFactor);
  checkCarafeGrad(op, gradOutput, features, d);
  const c10::cuda::CUDAGuard guard(features.device());
  if (gradOutput.numel() == 0) return {zerosLike(features), zerosLike(masks)};
  at::Tensor gradFeatures = at::empty(features.sizes(), features.options());
  at::Tensor gradMasks = at::empty(masks.sizes(), masks.options());
  const at::Tensor g = gradOutput.contiguous(), f = features.contiguous(), m = masks.contiguous();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatchFloatOrHalf(f.scalar_type(), [&](auto type) {
    using T = decltype(type);
    checkLaunch(op, launchCarafeBackward(ptr<T>(g), ptr<T>(f), ptr<T>(m),
                                         mutablePtr<T>(gradFeatures), mutablePtr<T>(gradMasks),
                                         d.N, d.C, d.H, d.W, d.kernelSize, d.groupSize,
                                         d.scaleFactor, stream));
  });
  return {gradFeatures, gradMasks};
}

at::Tensor crissCrossForwardCudaOp(const at::Tensor& query, const at::Tensor& key,
                                   const at::Tensor& value) {
  const char* op = "criss_cross_attention_forward";
  const CrissCrossDims d = checkCrissCross(op, query, key, value);
  const c10::cuda::CUDAGuard guard(query.device());
  at::Tensor output = at::empty(value.sizes(), value.options());
  if (output.numel() == 0) return output;
  const at::Tensor q = query.contiguous(), k = key.contiguous(), v = value.contiguous();
  // The TensorRT plugin's bounded workspace (the kernels tile the batch when it is exceeded).
  const size_t scratchBytes = crissCrossAttentionWorkspaceSize(d.N, d.Cq, d.C, d.H, d.W);
  at::Tensor scratch = workspace(scratchBytes, q);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatchFloatOrHalf(q.scalar_type(), [&](auto type) {
    using T = decltype(type);
    checkLaunch(op, launchCrissCrossAttention(ptr<T>(q), ptr<T>(k), ptr<T>(v),
                                              mutablePtr<T>(output), d.N, d.Cq, d.C, d.H, d.W,
                                              scratch.mutable_data_ptr(), scratchBytes, stream));
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> crissCrossBackwardCudaOp(
    const at::Tensor& gradOutput, const at::Tensor& query, const at::Tensor& key,
    const at::Tensor& value) {
  const char* op = "criss_cross_attention_backward";
  const CrissCrossDims d = checkCrissCross(op, query, key, value);
  checkCrissCrossGrad(op, gradOutput, value);
  const c10::cuda::CUDAGuard guard(query.device());
  if (gradOutput.numel() == 0) return {zerosLike(query), zerosLike(key), zerosLike(value)};
  at::Tensor gradQuery = at::empty(query.sizes(), query.options());
  at::Tensor gradKey = at::empty(key.sizes(), key.options());
  at::Tensor gradValue = at::empty(value.sizes(), value.options());
  const at::Tensor g = gradOutput.contiguous(), q = query.contiguous(), k = key.contiguous(),
                   v = value.contiguous();
  at::Tensor scratch =
      workspace(crissCrossAttentionBackwardWorkspaceSize(d.N, d.Cq, d.C, d.H, d.W), q);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatchFloatOrHalf(q.scalar_type(), [&](auto type) {
    using T = decltype(type);
    checkLaunch(op, launchCrissCrossAttentionBackward(
                        ptr<T>(g), ptr<T>(q), ptr<T>(k), ptr<T>(v), mutablePtr<T>(gradQuery),
                        mutablePtr<T>(gradKey), mutablePtr<T>(gradValue), d.N, d.Cq, d.C, d.H,
                        d.W, scratch.mutable_data_ptr(), stream));
  });
  return {gradQuery, gradKey, gradValue};
}

}  // namespace
}  // namespace attn_deploy

TORCH_LIBRARY_IMPL(attn_deploy_native, CUDA, m) {
  m.impl("carafe_forward", &attn_deploy::carafeForwardCudaOp);
  m.impl("carafe_backward", &attn_deploy::carafeBackwardCudaOp);
  m.impl("criss_cross_attention_forward", &attn_deploy::crissCrossForwardCudaOp);
  m.impl("criss_cross_attention_backward", &attn_deploy::crissCrossBackwardCudaOp);
}
