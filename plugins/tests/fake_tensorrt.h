// Stand-ins for the TensorRT objects a plugin receives from the builder, so the plugins can be
// driven through their real IPluginV3 interfaces on a machine without libnvinfer:
//  - FakeExprBuilder: an IExprBuilder whose expressions carry the value they would have at run
//    time and whether the builder would know it (a constant) or not (a dynamic dim);
//  - FakeRegistry: an IPluginRegistry keeping a list of creators;
//  - CapturingLoggerFinder: collects what the plugins log.
// IExprBuilder / IDimensionExpr forward to implementation objects (NvInferImpl.h); the fakes
// implement those, which is all the headers allow.
#pragma once

#include <NvInferRuntime.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace fake {

class Expr final : public nvinfer1::IDimensionExpr {
 public:
  Expr(int64_t value, bool known) : mImplObject(value, known) { mImpl = &mImplObject; }
  int64_t value() const { return mImplObject.value; }

 private:
  struct Impl final : nvinfer1::apiv::VDimensionExpr {
    Impl(int64_t v, bool k) : value(v), known(k) {}
    bool isConstant() const override { return known; }
    int64_t getConstantValue() const override { return known ? value : INT64_MIN; }
    bool isSizeTensor() const override { return false; }
    int64_t value;
    bool known;
  } mImplObject;
};

class ExprBuilder final : public nvinfer1::IExprBuilder {
 public:
  ExprBuilder() : mImplObject(*this) { mImpl = &mImplObject; }

  Expr const* make(int64_t value, bool known) {
    mExprs.push_back(std::make_unique<Expr>(value, known));
    return mExprs.back().get();
  }
  // Dims of an input: `known[i]` false marks a dynamic dim whose run-time value is `values[i]`.
  nvinfer1::DimsExprs dims(std::vector<int64_t> const& values, std::vector<bool> const& known) {
    nvinfer1::DimsExprs d{};
    d.nbDims = static_cast<int32_t>(values.size());
    for (size_t i = 0; i < values.size(); ++i) d.d[i] = make(values[i], known[i]);
    return d;
  }

 private:
  struct Impl final : nvinfer1::apiv::VExprBuilder {
    explicit Impl(ExprBuilder& b) : builder(b) {}
    nvinfer1::IDimensionExpr const* constant(int64_t value) override { return builder.make(value, true); }
    nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op,
                                              nvinfer1::IDimensionExpr const& first,
                                              nvinfer1::IDimensionExpr const& second) override {
      int64_t const a = static_cast<Expr const&>(first).value();
      int64_t const b = static_cast<Expr const&>(second).value();
      int64_t r = 0;
      switch (op) {
        case nvinfer1::DimensionOperation::kSUM: r = a + b; break;
        case nvinfer1::DimensionOperation::kPROD: r = a * b; break;
        case nvinfer1::DimensionOperation::kMAX: r = a > b ? a : b; break;
        case nvinfer1::DimensionOperation::kMIN: r = a < b ? a : b; break;
        case nvinfer1::DimensionOperation::kSUB: r = a - b; break;
        case nvinfer1::DimensionOperation::kEQUAL: r = a == b; break;
        case nvinfer1::DimensionOperation::kLESS: r = a < b; break;
        case nvinfer1::DimensionOperation::kFLOOR_DIV: r = a / b; break;
        case nvinfer1::DimensionOperation::kCEIL_DIV: r = (a + b - 1) / b; break;
      }
      return builder.make(r, first.isConstant() && second.isConstant());
    }
    nvinfer1::IDimensionExpr const* declareSizeTensor(int32_t, nvinfer1::IDimensionExpr const&,
                                                      nvinfer1::IDimensionExpr const&) override {
      return nullptr;  // the plugins declare no size tensors
    }
    ExprBuilder& builder;
  } mImplObject;
  std::deque<std::unique_ptr<Expr>> mExprs;
};

class Registry final : public nvinfer1::IPluginRegistry {
 public:
  std::vector<nvinfer1::IPluginCreatorInterface*> creators;
  std::vector<std::string> namespaces;

  bool registerCreator(nvinfer1::IPluginCreatorInterface& creator,
                       nvinfer1::AsciiChar const* const pluginNamespace) noexcept override {
    creators.push_back(&creator);
    namespaces.emplace_back(pluginNamespace);
    return true;
  }
  nvinfer1::IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
    *n = static_cast<int32_t>(creators.size());
    return creators.data();
  }
  nvinfer1::IPluginCreatorInterface* getCreator(nvinfer1::AsciiChar const* const, nvinfer1::AsciiChar const* const,
                                                nvinfer1::AsciiChar const* const) noexcept override {
    return nullptr;  // the library must not rely on it (it logs errors in TensorRT)
  }
  bool deregisterCreator(nvinfer1::IPluginCreatorInterface const& creator) noexcept override {
    for (size_t i = 0; i < creators.size(); ++i) {
      if (creators[i] == &creator) {
        creators.erase(creators.begin() + static_cast<std::ptrdiff_t>(i));
        namespaces.erase(namespaces.begin() + static_cast<std::ptrdiff_t>(i));
        return true;
      }
    }
    return false;
  }
  void setErrorRecorder(nvinfer1::IErrorRecorder* const) noexcept override {}
  nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
  bool isParentSearchEnabled() const override { return false; }
  void setParentSearchEnabled(bool const) override {}
  PluginLibraryHandle loadLibrary(nvinfer1::AsciiChar const*) noexcept override { return nullptr; }
  void deregisterLibrary(PluginLibraryHandle) noexcept override {}
  nvinfer1::IPluginResource* acquirePluginResource(nvinfer1::AsciiChar const*,
                                                   nvinfer1::IPluginResource*) noexcept override {
    return nullptr;
  }
  int32_t releasePluginResource(nvinfer1::AsciiChar const*) noexcept override { return 0; }
  // Pure virtual in newer headers, absent in 10.3: defined without `override` so it fits both.
  nvinfer1::IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept {
    return getAllCreators(n);
  }
#if NV_TENSORRT_MAJOR < 11
  // The IPluginV2 creator API, deprecated in 10 and removed in TensorRT 11.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  bool registerCreator(nvinfer1::IPluginCreator&, nvinfer1::AsciiChar const* const) noexcept override {
    return false;
  }
  nvinfer1::IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override {
    *n = 0;
    return nullptr;
  }
  nvinfer1::IPluginCreator* getPluginCreator(nvinfer1::AsciiChar const* const, nvinfer1::AsciiChar const* const,
                                             nvinfer1::AsciiChar const* const) noexcept override {
    return nullptr;
  }
  bool deregisterCreator(nvinfer1::IPluginCreator const&) noexcept override { return false; }
#pragma GCC diagnostic pop
#endif
};

class CapturingLogger final : public nvinfer1::ILogger {
 public:
  std::vector<std::string> messages;
  void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override {
    if (severity <= Severity::kWARNING) messages.emplace_back(msg);
  }
  std::string last() const { return messages.empty() ? std::string() : messages.back(); }
};

class LoggerFinder final : public nvinfer1::ILoggerFinder {
 public:
  explicit LoggerFinder(CapturingLogger& logger) : mLogger(logger) {}
  nvinfer1::ILogger* findLogger() override { return &mLogger; }

 private:
  CapturingLogger& mLogger;
};

// A creator from another library whose strings are null (TensorRT does not forbid it).
class NullStringCreator final : public nvinfer1::IPluginCreatorV3One {
 public:
  nvinfer1::IPluginV3* createPlugin(nvinfer1::AsciiChar const*, nvinfer1::PluginFieldCollection const*,
                                    nvinfer1::TensorRTPhase) noexcept override {
    return nullptr;
  }
  nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return nullptr; }
  nvinfer1::AsciiChar const* getPluginName() const noexcept override { return nullptr; }
  nvinfer1::AsciiChar const* getPluginVersion() const noexcept override { return nullptr; }
  nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override { return nullptr; }
};

// A creator interface whose kind string is null.
class NullKindCreator final : public nvinfer1::IPluginCreatorInterface {
 public:
  nvinfer1::InterfaceInfo getInterfaceInfo() const noexcept override {
    return nvinfer1::InterfaceInfo{nullptr, 1, 0};
  }
};

}  // namespace fake
