// Host tests of the TensorRT plugins through their real IPluginV3 interfaces (TensorRT headers, no
// libnvinfer, no GPU): creators and fields, every validation error as TensorRT would see it (a null
// plugin or an error code, with the message in the log), serialization round trip through
// createPlugin(kRUNTIME), clone, type/format combinations, output types and shapes with dynamic
// dims, workspace sizes, and the registration protocol. Kernels are not launched here.
#include <NvInferRuntime.h>

#include <cstring>
#include <memory>

#include "carafe_plugin.h"
#include "check.h"
#include "criss_cross_kernel.h"
#include "criss_cross_plugin.h"
#include "fake_tensorrt.h"
#include "registration.h"
#include "registry_updates.h"

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder);

using namespace nvinfer1;

namespace {

fake::CapturingLogger gLog;
fake::LoggerFinder gFinder(gLog);

struct InstallLogger {
  InstallLogger() { setLoggerFinder(&gFinder); }
} const gInstallLogger;

IPluginCreatorV3One* creatorNamed(char const* name) {
  int32_t n = 0;
  IPluginCreatorInterface* const* creators = getCreators(n);
  for (int32_t i = 0; i < n; ++i) {
    auto* c = static_cast<IPluginCreatorV3One*>(creators[i]);
    if (std::strcmp(c->getPluginName(), name) == 0) return c;
  }
  return nullptr;
}

// A field collection the way the ONNX parser builds it from a node's int attributes.
struct Fields {
  std::vector<int32_t> values;
  std::vector<PluginField> fields;
  PluginFieldCollection fc{};
  Fields(std::vector<std::pair<char const*, int32_t>> const& attrs) {
    values.reserve(attrs.size());
    for (auto const& [name, v] : attrs) {
      values.push_back(v);
      fields.emplace_back(name, &values.back(), PluginFieldType::kINT32, 1);
    }
    fc.nbFields = static_cast<int32_t>(fields.size());
    fc.fields = fields.data();
  }
};

std::unique_ptr<IPluginV3> createCarafe(int32_t k, int32_t g, int32_t s,
                                        TensorRTPhase phase = TensorRTPhase::kBUILD) {
  Fields f({{"kernel_size", k}, {"group_size", g}, {"scale_factor", s}});
  return std::unique_ptr<IPluginV3>(creatorNamed("CARAFE")->createPlugin("carafe_node", &f.fc, phase));
}

template <class T>
T* capability(IPluginV3& p, PluginCapabilityType type) {
  return static_cast<T*>(p.getCapabilityInterface(type));
}

DynamicPluginTensorDesc desc(std::vector<int64_t> const& dims, DataType type,
                             TensorFormat format = TensorFormat::kLINEAR) {
  DynamicPluginTensorDesc d{};
  d.desc.dims.nbDims = static_cast<int32_t>(dims.size());
  d.min.nbDims = d.max.nbDims = d.opt.nbDims = d.desc.dims.nbDims;
  for (size_t i = 0; i < dims.size(); ++i) {
    d.desc.dims.d[i] = dims[i];
    d.min.d[i] = d.opt.d[i] = d.max.d[i] = dims[i] < 0 ? 64 : dims[i];
  }
  d.desc.type = type;
  d.desc.format = format;
  return d;
}

PluginTensorDesc runtimeDesc(std::vector<int64_t> const& dims, DataType type) {
  return desc(dims, type).desc;
}

bool logged(std::string const& fragment) {
  return gLog.last().find(fragment) != std::string::npos;
}

}  // namespace

TEST(creators_advertise_names_versions_and_onnx_attribute_fields) {
  int32_t n = 0;
  IPluginCreatorInterface* const* creators = getCreators(n);
  CHECK_EQ(n, 2);
  for (int32_t i = 0; i < n; ++i) {
    CHECK_STR_EQ(creators[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE");
    auto* c = static_cast<IPluginCreatorV3One*>(creators[i]);
    CHECK_STR_EQ(c->getPluginVersion(), "1");
    CHECK_STR_EQ(c->getPluginNamespace(), "attn_deploy");
  }
  PluginFieldCollection const* carafe = creatorNamed("CARAFE")->getFieldNames();
  CHECK_EQ(carafe->nbFields, 3);
  char const* const names[] = {"kernel_size", "group_size", "scale_factor"};
  for (int32_t i = 0; i < 3; ++i) {
    CHECK_STR_EQ(carafe->fields[i].name, names[i]);
    CHECK(carafe->fields[i].type == PluginFieldType::kINT32 && carafe->fields[i].length == 1);
  }
  CHECK_EQ(creatorNamed("CrissCrossAttention")->getFieldNames()->nbFields, 0);
}

TEST(carafe_creation_errors_are_logged_and_return_null) {
  gLog.messages.clear();
  CHECK(createCarafe(4, 1, 2) == nullptr);
  CHECK(logged("kernel_size must be an odd integer in [1, 255]") && logged("got 4"));
  CHECK(createCarafe(2147483647, 3, 2) == nullptr);  // once overflowed g*k*k and was accepted
  CHECK(logged("got 2147483647"));
  CHECK(createCarafe(5, 0, 2) == nullptr);
  CHECK(logged("group_size must be >= 1"));
  CHECK(createCarafe(5, 1, 0) == nullptr);
  CHECK(logged("scale_factor must be in [1, 64]"));

  IPluginCreatorV3One* creator = creatorNamed("CARAFE");
  Fields missing({{"kernel_size", 5}, {"scale_factor", 2}});
  CHECK(creator->createPlugin("n", &missing.fc, TensorRTPhase::kBUILD) == nullptr);
  CHECK(logged("missing field 'group_size'"));

  float const k = 5.f;
  Fields typed({{"kernel_size", 0}, {"group_size", 1}, {"scale_factor", 2}});
  typed.fields[0] = PluginField("kernel_size", &k, PluginFieldType::kFLOAT32, 1);
  CHECK(creator->createPlugin("n", &typed.fc, TensorRTPhase::kBUILD) == nullptr);
  CHECK(logged("'kernel_size'") && logged("float32"));

  CHECK(creator->createPlugin("n", nullptr, TensorRTPhase::kBUILD) == nullptr);
  CHECK(logged("missing field 'kernel_size'"));

  Fields extra({{"gamma", 1}});
  CHECK(creatorNamed("CrissCrossAttention")->createPlugin("n", &extra.fc, TensorRTPhase::kBUILD) == nullptr);
  CHECK(logged("unknown field 'gamma'"));
  // Every failure above was reported, none as an internal error.
  for (auto const& m : gLog.messages) CHECK(m.find("internal error") == std::string::npos);
}

TEST(carafe_exposes_all_capabilities_and_identity) {
  auto p = createCarafe(5, 1, 2);
  CHECK(p != nullptr);
  auto* core = capability<IPluginV3OneCore>(*p, PluginCapabilityType::kCORE);
  CHECK(core != nullptr && capability<IPluginV3OneBuild>(*p, PluginCapabilityType::kBUILD) != nullptr);
  CHECK(capability<IPluginV3OneRuntime>(*p, PluginCapabilityType::kRUNTIME) != nullptr);
  CHECK_STR_EQ(core->getPluginName(), "CARAFE");
  CHECK_STR_EQ(core->getPluginVersion(), "1");
  CHECK_STR_EQ(core->getPluginNamespace(), "attn_deploy");
  CHECK_STR_EQ(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE");
  auto* build = capability<IPluginV3OneBuild>(*p, PluginCapabilityType::kBUILD);
  CHECK_EQ(build->getNbOutputs(), 1);
  CHECK_STR_EQ(build->getMetadataString(), "kernel_size=5,group_size=1,scale_factor=2");
  CHECK_STR_EQ(build->getTimingCacheID(), "kernel_size=5,group_size=1,scale_factor=2");
}

TEST(serialization_round_trips_through_the_runtime_phase) {
  auto p = createCarafe(3, 4, 3);
  auto* runtime = capability<IPluginV3OneRuntime>(*p, PluginCapabilityType::kRUNTIME);
  PluginFieldCollection const* fc = runtime->getFieldsToSerialize();
  CHECK(fc != nullptr && fc->nbFields == 3);
  // The serialized fields are exactly the creator's advertised fields, by name and type.
  PluginFieldCollection const* advertised = creatorNamed("CARAFE")->getFieldNames();
  for (int32_t i = 0; i < fc->nbFields; ++i) {
    CHECK_STR_EQ(fc->fields[i].name, advertised->fields[i].name);
    CHECK(fc->fields[i].type == advertised->fields[i].type);
  }
  std::unique_ptr<IPluginV3> restored(
      creatorNamed("CARAFE")->createPlugin("n", fc, TensorRTPhase::kRUNTIME));
  CHECK(restored != nullptr);
  auto const& a = static_cast<attn_deploy::trt::CarafePlugin&>(
                      *capability<IPluginV3OneCore>(*restored, PluginCapabilityType::kCORE))
                      .attributes();
  CHECK((a == attn_deploy::plugin::CarafeAttributes{3, 4, 3}));

  auto cc = std::unique_ptr<IPluginV3>(
      creatorNamed("CrissCrossAttention")->createPlugin("n", nullptr, TensorRTPhase::kBUILD));
  PluginFieldCollection const* none =
      capability<IPluginV3OneRuntime>(*cc, PluginCapabilityType::kRUNTIME)->getFieldsToSerialize();
  CHECK(none != nullptr && none->nbFields == 0);
  std::unique_ptr<IPluginV3> ccRestored(
      creatorNamed("CrissCrossAttention")->createPlugin("n", none, TensorRTPhase::kRUNTIME));
  CHECK(ccRestored != nullptr);
}

TEST(clone_and_attach_to_context_copy_the_attributes) {
  auto p = createCarafe(7, 2, 2);
  std::unique_ptr<IPluginV3> copy(p->clone());
  std::unique_ptr<IPluginV3> attached(
      capability<IPluginV3OneRuntime>(*p, PluginCapabilityType::kRUNTIME)->attachToContext(nullptr));
  for (IPluginV3* q : {copy.get(), attached.get()}) {
    CHECK(q != nullptr && q != p.get());
    CHECK_STR_EQ(capability<IPluginV3OneBuild>(*q, PluginCapabilityType::kBUILD)->getMetadataString(),
                 "kernel_size=7,group_size=2,scale_factor=2");
    // The copy serializes its own attributes, not pointers into the original.
    PluginFieldCollection const* fc =
        capability<IPluginV3OneRuntime>(*q, PluginCapabilityType::kRUNTIME)->getFieldsToSerialize();
    CHECK(fc->fields[0].data != capability<IPluginV3OneRuntime>(*p, PluginCapabilityType::kRUNTIME)
                                    ->getFieldsToSerialize()->fields[0].data);
    CHECK_EQ(*static_cast<int32_t const*>(fc->fields[0].data), 7);
  }
}

TEST(format_combinations_are_float_or_half_linear_following_input_zero) {
  auto p = createCarafe(5, 1, 2);
  auto* build = capability<IPluginV3OneBuild>(*p, PluginCapabilityType::kBUILD);
  for (DataType t : {DataType::kFLOAT, DataType::kHALF}) {
    DynamicPluginTensorDesc io[3] = {desc({2, 8, 4, 4}, t), desc({2, 25, 8, 8}, t), desc({2, 8, 8, 8}, t)};
    for (int32_t pos = 0; pos < 3; ++pos) CHECK(build->supportsFormatCombination(pos, io, 2, 1));
    DataType const other = t == DataType::kFLOAT ? DataType::kHALF : DataType::kFLOAT;
    io[1].desc.type = other;
    CHECK(!build->supportsFormatCombination(1, io, 2, 1));
    io[1] = desc({2, 25, 8, 8}, t);
    io[2].desc.format = TensorFormat::kCHW32;
    CHECK(!build->supportsFormatCombination(2, io, 2, 1));
  }
  for (DataType t : {DataType::kINT8, DataType::kINT32, DataType::kBF16, DataType::kBOOL}) {
    DynamicPluginTensorDesc io[1] = {desc({2, 8, 4, 4}, t)};
    CHECK(!build->supportsFormatCombination(0, io, 2, 1));
  }
  DynamicPluginTensorDesc hwc[1] = {desc({2, 8, 4, 4}, DataType::kHALF, TensorFormat::kHWC8)};
  CHECK(!build->supportsFormatCombination(0, hwc, 2, 1));
}

TEST(output_type_follows_the_input_type) {
  auto p = createCarafe(5, 1, 2);
  auto* build = capability<IPluginV3OneBuild>(*p, PluginCapabilityType::kBUILD);
  for (DataType t : {DataType::kFLOAT, DataType::kHALF}) {
    DataType in[2] = {t, t};
    DataType out[1] = {DataType::kINT8};
    CHECK_EQ(build->getOutputDataTypes(out, 1, in, 2), 0);
    CHECK(out[0] == t);
  }
  gLog.messages.clear();
  DataType mixed[2] = {DataType::kFLOAT, DataType::kHALF};
  DataType out[1];
  CHECK(build->getOutputDataTypes(out, 1, mixed, 2) != 0);
  CHECK(logged("'masks' is float16"));
  DataType bf16[2] = {DataType::kBF16, DataType::kBF16};
  CHECK(build->getOutputDataTypes(out, 1, bf16, 2) != 0);
  CHECK(logged("float32 or float16"));
  DataType three[3] = {DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT};
  CHECK(build->getOutputDataTypes(out, 1, three, 3) != 0);
  CHECK(logged("expected 2 inputs (features, masks)"));
}

TEST(carafe_output_shape_with_dynamic_dims) {
  auto p = createCarafe(5, 2, 3);
  auto* build = capability<IPluginV3OneBuild>(*p, PluginCapabilityType::kBUILD);
  fake::ExprBuilder eb;
  // N, H, W dynamic (run-time values 2, 7, 5); channels fixed in the network.
  DimsExprs in[2] = {eb.dims({2, 6, 7, 5}, {false, true, false, false}),
                     eb.dims({2, 50, 21, 15}, {false, true, false, false})};
  DimsExprs out[1]{};
  CHECK_EQ(build->getOutputShapes(in, 2, nullptr, 0, out, 1, eb), 0);
  CHECK_EQ(out[0].nbDims, 4);
  int64_t const expected[] = {2, 6, 21, 15};
  for (int32_t i = 0; i < 4; ++i) {
    CHECK_EQ(static_cast<fake::Expr const*>(out[0].d[i])->value(), expected[i]);
  }
  CHECK(!out[0].d[0]->isConstant() && out[0].d[1]->isConstant() && !out[0].d[2]->isConstant());

  gLog.messages.clear();
  DimsExprs badGroups[2] = {eb.dims({2, 7, 7, 5}, {false, true, false, false}),
                            eb.dims({2, 50, 21, 15}, {false, true, false, false})};
  CHECK(build->getOutputShapes(badGroups, 2, nullptr, 0, out, 1, eb) != 0);
  CHECK(logged("group_size 2 must divide") && logged("got 7 channels"));
  DimsExprs badMasks[2] = {eb.dims({2, 6, 7, 5}, {false, true, false, false}),
                           eb.dims({2, 49, 21, 15}, {false, true, false, false})};
  CHECK(build->getOutputShapes(badMasks, 2, nullptr, 0, out, 1, eb) != 0);
  CHECK(logged("2 * 5^2 = 50") && logged("got 49"));
}

TEST(configure_and_shape_change_check_the_shapes) {
  auto p = createCarafe(5, 1, 2);
  auto* build = capability<IPluginV3OneBuild>(*p, PluginCapabilityType::kBUILD);
  auto* runtime = capability<IPluginV3OneRuntime>(*p, PluginCapabilityType::kRUNTIME);
  DynamicPluginTensorDesc in[2] = {desc({-1, 16, -1, -1}, DataType::kFLOAT),
                                   desc({-1, 25, -1, -1}, DataType::kFLOAT)};
  DynamicPluginTensorDesc out[1] = {desc({-1, 16, -1, -1}, DataType::kFLOAT)};
  CHECK_EQ(build->configurePlugin(in, 2, out, 1), 0);
  CHECK_EQ(build->getWorkspaceSize(in, 2, out, 1), size_t{0});

  PluginTensorDesc rin[2] = {runtimeDesc({3, 16, 5, 6}, DataType::kFLOAT),
                             runtimeDesc({3, 25, 10, 12}, DataType::kFLOAT)};
  PluginTensorDesc rout[1] = {runtimeDesc({3, 16, 10, 12}, DataType::kFLOAT)};
  CHECK_EQ(runtime->onShapeChange(rin, 2, rout, 1), 0);
  gLog.messages.clear();
  rin[1] = runtimeDesc({3, 25, 10, 13}, DataType::kFLOAT);
  CHECK(runtime->onShapeChange(rin, 2, rout, 1) != 0);
  CHECK(logged("width") && logged("got 13"));
  in[1] = desc({-1, 24, -1, -1}, DataType::kFLOAT);
  CHECK(build->configurePlugin(in, 2, out, 1) != 0);
  CHECK(logged("got 24"));
}

TEST(criss_cross_shapes_types_and_workspace) {
  std::unique_ptr<IPluginV3> p(
      creatorNamed("CrissCrossAttention")->createPlugin("n", nullptr, TensorRTPhase::kBUILD));
  CHECK(p != nullptr);
  auto* build = capability<IPluginV3OneBuild>(*p, PluginCapabilityType::kBUILD);
  auto* runtime = capability<IPluginV3OneRuntime>(*p, PluginCapabilityType::kRUNTIME);
  fake::ExprBuilder eb;
  DimsExprs in[3] = {eb.dims({2, 8, 9, 11}, {false, true, false, false}),
                     eb.dims({2, 8, 9, 11}, {false, true, false, false}),
                     eb.dims({2, 64, 9, 11}, {false, true, false, false})};
  DimsExprs out[1]{};
  CHECK_EQ(build->getOutputShapes(in, 3, nullptr, 0, out, 1, eb), 0);
  int64_t const expected[] = {2, 64, 9, 11};
  for (int32_t i = 0; i < 4; ++i) CHECK_EQ(static_cast<fake::Expr const*>(out[0].d[i])->value(), expected[i]);

  DataType types[3] = {DataType::kHALF, DataType::kHALF, DataType::kHALF};
  DataType outType[1];
  CHECK(build->getOutputDataTypes(outType, 1, types, 3) == 0 && outType[0] == DataType::kHALF);

  // The workspace covers the profile's largest shapes.
  DynamicPluginTensorDesc din[3] = {desc({-1, 8, -1, -1}, DataType::kHALF),
                                    desc({-1, 8, -1, -1}, DataType::kHALF),
                                    desc({-1, 64, -1, -1}, DataType::kHALF)};
  for (auto& d : din) {
    d.max.d[0] = 4;
    d.max.d[2] = 32;
    d.max.d[3] = 48;
  }
  DynamicPluginTensorDesc dout[1] = {desc({-1, 64, -1, -1}, DataType::kHALF)};
  CHECK_EQ(build->configurePlugin(din, 3, dout, 1), 0);
  using namespace attn_deploy;  // the launcher header's namespace (or the global one)
  CHECK_EQ(build->getWorkspaceSize(din, 3, dout, 1),
           crissCrossAttentionWorkspaceSize(4, 8, 64, 32, 48));
  CHECK_EQ(crissCrossAttentionWorkspaceSize(4, 8, 64, 32, 48), size_t(4) * 80 * 32 * 48 * 4);
  // A profile up to 8 x 256 x 256 once reserved 1 GiB; the library's budget bounds it now.
  for (auto& d : din) {
    d.max.d[0] = 8;
    d.max.d[2] = 256;
    d.max.d[3] = 256;
  }
  CHECK_EQ(build->getWorkspaceSize(din, 3, dout, 1),
           size_t(kCrissCrossWorkspaceBudget) < (size_t(1) << 30) ? size_t(kCrissCrossWorkspaceBudget)
                                                                  : size_t(1) << 30);

  PluginTensorDesc rin[3] = {runtimeDesc({2, 8, 9, 11}, DataType::kHALF),
                             runtimeDesc({2, 8, 9, 12}, DataType::kHALF),
                             runtimeDesc({2, 64, 9, 11}, DataType::kHALF)};
  PluginTensorDesc rout[1] = {runtimeDesc({2, 64, 9, 11}, DataType::kHALF)};
  gLog.messages.clear();
  CHECK(runtime->onShapeChange(rin, 3, rout, 1) != 0);
  CHECK(logged("width of key and query") && logged("got 12"));
}

TEST(registration_happens_once_and_withdraws_what_it_added) {
  fake::Registry registry;
  int32_t n = 0;
  IPluginCreatorInterface* const* creators = getCreators(n);  // no TensorRT here: no version check
  CHECK_EQ(n, 2);
  // Another library's creators with null strings sit in the registry: compared, never read.
  fake::NullStringCreator nullNames;
  fake::NullKindCreator nullKind;
  registry.registerCreator(nullNames, "other");
  registry.registerCreator(nullKind, "other");
  CHECK_EQ(attn_deploy::trt::registerMissingCreators(registry, creators, n, "attn_deploy"), 2);
  CHECK_EQ(registry.creators.size(), size_t{4});
  CHECK_STR_EQ(registry.namespaces[2], "attn_deploy");
  // A second load-time registration (the library loaded twice) adds nothing.
  CHECK_EQ(attn_deploy::trt::registerMissingCreators(registry, creators, n, "attn_deploy"), 0);
  CHECK_EQ(registry.creators.size(), size_t{4});
  CHECK_EQ(attn_deploy::trt::withdrawRegisteredCreators(), 2);
  CHECK_EQ(registry.creators.size(), size_t{2});  // the other library's creators stay
  CHECK_EQ(attn_deploy::trt::withdrawRegisteredCreators(), 0);
}

CHECK_MAIN()
