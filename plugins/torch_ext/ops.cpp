// PyTorch registration of the native ops (namespace attn_deploy_native) and their CPU kernels.
// The CUDA kernels register in cuda_ops.cpp, built only when torch and nvcc have CUDA.
//
//   carafe_forward(features, masks, kernel_size, group_size, scale_factor) -> output
//   carafe_backward(grad_output, features, masks, kernel_size, group_size, scale_factor)
//       -> (grad_features, grad_masks)
//   criss_cross_attention_forward(query, key, value) -> output
//   criss_cross_attention_backward(grad_output, query, key, value)
//       -> (grad_query, grad_key, grad_value)
//
// float32 and float16 (accumulated in float32), any strides (made contiguous here).
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <tuple>

#include "cpu_ops.h"
#include "op_checks.h"

namespace attn_deploy {
namespace {

template <typename T>
const T* ptr(const at::Tensor& t) {
  return t.const_data_ptr<T>();
}

template <typename T>
T* mutablePtr(at::Tensor& t) {
  return t.mutable_data_ptr<T>();
}

at::Tensor zerosLike(const at::Tensor& t) { return at::zeros(t.sizes(), t.options()); }

at::Tensor carafeForwardCpuOp(const at::Tensor& features, const at::Tensor& masks,
                              int64_t kernelSize, int64_t groupSize, int64_t scaleFactor) {
  const CarafeDims d =
      checkCarafe("carafe_forward", features, masks, kernelSize, groupSize, scaleFactor);
  at::Tensor output = at::empty({d.N, d.C, d.outH(), d.outW()}, features.options());
  if (output.numel() == 0) return output;
  const at::Tensor f = features.contiguous(), m = masks.contiguous();
  dispatchFloatOrHalf(f.scalar_type(), [&](auto type) {
    using T = decltype(type);
    carafeForwardCpu(ptr<T>(f), ptr<T>(m), mutablePtr<T>(output), d);
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor> carafeBackwardCpuOp(const at::Tensor& gradOutput,
                                                       const at::Tensor& features,
                                                       const at::Tensor& masks, int64_t kernelSize,
                                                       int64_t groupSize, int64_t scaleFactor) {
  const char* op = "carafe_backward";
  const CarafeDims d = checkCarafe(op, features, masks, kernelSize, groupSize, scaleFactor);
  checkCarafeGrad(op, gradOutput, features, d);
  // Empty output: no element reaches the loss, so both gradients are zero.
  if (gradOutput.numel() == 0) return {zerosLike(features), zerosLike(masks)};
  at::Tensor gradFeatures = at::empty(features.sizes(), features.options());
  at::Tensor gradMasks = at::empty(masks.sizes(), masks.options());
  const at::Tensor g = gradOutput.contiguous(), f = features.contiguous(), m = masks.contiguous();
  dispatchFloatOrHalf(f.scalar_type(), [&](auto type) {
    using T = decltype(type);
    carafeBackwardCpu(ptr<T>(g), ptr<T>(f), ptr<T>(m), mutablePtr<T>(gradFeatures),
                      mutablePtr<T>(gradMasks), d);
  });
  return {gradFeatures, gradMasks};
}

at::Tensor crissCrossForwardCpuOp(const at::Tensor& query, const at::Tensor& key,
                                  const at::Tensor& value) {
  const CrissCrossDims d = checkCrissCross("criss_cross_attention_forward", query, key, value);
  at::Tensor output = at::empty(value.sizes(), value.options());
  if (output.numel() == 0) return output;
  const at::Tensor q = query.contiguous(), k = key.contiguous(), v = value.contiguous();
  at::Tensor workspace =
      at::empty({crissCrossForwardCpuWorkspace(d)}, q.options().dtype(at::kFloat));
  dispatchFloatOrHalf(q.scalar_type(), [&](auto type) {
    using T = decltype(type);
    crissCrossForwardCpu(ptr<T>(q), ptr<T>(k), ptr<T>(v), mutablePtr<T>(output),
                         mutablePtr<float>(workspace), d);
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> crissCrossBackwardCpuOp(
    const at::Tensor& gradOutput, const at::Tensor& query, const at::Tensor& key,
    const at::Tensor& value) {
  const char* op = "criss_cross_attention_backward";
  const CrissCrossDims d = checkCrissCross(op, query, key, value);
  checkCrissCrossGrad(op, gradOutput, value);
  // Empty output: no element reaches the loss, so every gradient is zero.
  if (gradOutput.numel() == 0) return {zerosLike(query), zerosLike(key), zerosLike(value)};
  at::Tensor gradQuery = at::empty(query.sizes(), query.options());
  at::Tensor gradKey = at::empty(key.sizes(), key.options());
  at::Tensor gradValue = at::empty(value.sizes(), value.options());
  const at::Tensor g = gradOutput.contiguous(), q = query.contiguous(), k = key.contiguous(),
                   v = value.contiguous();
  at::Tensor workspace =
      at::empty({crissCrossBackwardCpuWorkspace(d)}, q.options().dtype(at::kFloat));
  dispatchFloatOrHalf(q.scalar_type(), [&](auto type) {
    using T = decltype(type);
    crissCrossBackwardCpu(ptr<T>(g), ptr<T>(q), ptr<T>(k), ptr<T>(v), mutablePtr<T>(gradQuery),
                          mutablePtr<T>(gradKey), mutablePtr<T>(gradValue),
                          mutablePtr<float>(workspace), d);
  });
  return {gradQuery, gradKey, gradValue};
}

}  // namespace
}  // namespace attn_deploy

TORCH_LIBRARY(attn_deploy_native, m) {
  m.def("carafe_forward(Tensor features, Tensor masks, int kernel_size, int group_size, "
        "int scale_factor) -> Tensor");
  m.def("carafe_backward(Tensor grad_output, Tensor features, Tensor masks, int kernel_size, "
        "int group_size, int scale_factor) -> (Tensor, Tensor)");
  m.def("criss_cross_attention_forward(Tensor query, Tensor key, Tensor value) -> Tensor");
  m.def("criss_cross_attention_backward(Tensor grad_output, Tensor query, Tensor key, "
        "Tensor value) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(attn_deploy_native, CPU, m) {
  m.impl("carafe_forward", &attn_deploy::carafeForwardCpuOp);
  m.impl("carafe_backward", &attn_deploy::carafeBackwardCpuOp);
  m.impl("criss_cross_attention_forward", &attn_deploy::crissCrossForwardCpuOp);
  m.impl("criss_cross_attention_backward", &attn_deploy::crissCrossBackwardCpuOp);
}
