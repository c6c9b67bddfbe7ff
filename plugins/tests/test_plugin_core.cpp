// Host tests of the TensorRT-free plugin core: fields, validation, serialization, type and shape
// rules. Built and run everywhere (no TensorRT, CUDA or GPU needed).
#include <cstdint>

#include "carafe_rules.h"
#include "check.h"
#include "criss_cross_rules.h"

using namespace attn_deploy::plugin;

namespace {

// Field storage the way the ONNX parser hands attributes over: one int32 per field.
struct CarafeFields {
  int32_t k = 5, g = 2, s = 2;
  std::vector<FieldView> views() const {
    return {{"kernel_size", FieldType::kInt32, &k, 1},
            {"group_size", FieldType::kInt32, &g, 1},
            {"scale_factor", FieldType::kInt32, &s, 1}};
  }
};

std::vector<FieldView> without(std::vector<FieldView> v, std::string_view name) {
  std::vector<FieldView> out;
  for (auto const& f : v) {
    if (f.name != name) out.push_back(f);
  }
  return out;
}

}  // namespace

TEST(carafe_fields_parse_in_any_order_and_as_int64) {
  CarafeFields f;
  auto views = f.views();
  std::swap(views[0], views[2]);
  CarafeAttributes const a = parseCarafeFields(views);
  CHECK_EQ(a.kernelSize, 5);
  CHECK_EQ(a.groupSize, 2);
  CHECK_EQ(a.scaleFactor, 2);

  int64_t const k64 = 3, g64 = 4, s64 = 3;
  CarafeAttributes const b = parseCarafeFields({{"kernel_size", FieldType::kInt64, &k64, 1},
                                                {"group_size", FieldType::kInt64, &g64, 1},
                                                {"scale_factor", FieldType::kInt64, &s64, 1}});
  CHECK((b == CarafeAttributes{3, 4, 3}));
}

TEST(carafe_rejects_even_or_non_positive_kernel) {
  for (int32_t k : {4, 2, 0, -1, -3}) {
    CarafeFields f;
    f.k = k;
    CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "CARAFE", "kernel_size",
                 "odd", std::to_string(k));
  }
}

TEST(carafe_rejects_group_or_scale_below_one) {
  CarafeFields f;
  f.g = 0;
  CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "group_size", ">= 1", "got 0");
  f = CarafeFields{};
  f.s = 0;
  CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "scale_factor", "[1, 64]", "got 0");
  f.s = -2;
  CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "scale_factor", "got -2");
}

TEST(carafe_enforces_the_ops_size_limits_with_exact_arithmetic) {
  // kernel_size 2147483647 with group_size 3 once overflowed g*k*k (UBSan) and was accepted.
  CarafeFields f;
  f.k = 2147483647;
  f.g = 3;
  CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "kernel_size", "[1, 255]",
               "2147483647");
  for (int32_t k : {257, 32767, 65535}) {
    f.k = k;
    CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "kernel_size", "[1, 255]");
  }
  f = CarafeFields{};
  f.k = 255;
  f.g = 1;
  CHECK(parseCarafeFields(f.views()) == (CarafeAttributes{255, 1, 2}));  // the limit itself
  f.g = 2147483647;  // 255^2 * (2^31 - 1) mask channels: exact in 64 bits, too many for int32
  CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "group_size * kernel_size^2",
               "2147483647 * 255^2", "does not fit in int32");
  f = CarafeFields{};
  f.s = 65;
  CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "scale_factor", "[1, 64]",
               "got 65");
  f.s = 2147483647;
  CHECK_THROWS(PluginInputError, parseCarafeFields(f.views()), "scale_factor", "[1, 64]");
  f.s = 64;
  CHECK(parseCarafeFields(f.views()).scaleFactor == 64);

  // Output plane (H*s) * (W*s) below 2^27: 4096 x 8192 x 4 = 2^27 is one too many.
  CarafeAttributes const a{1, 1, 2};
  checkCarafeInputs(a, makeShape({1, 1, 4096, 8191}), makeShape({1, 1, 8192, 16382}));
  CHECK_THROWS(PluginInputError,
               checkCarafeInputs(a, makeShape({1, 1, 4096, 8192}), makeShape({1, 1, 8192, 16384})),
               "H*W*scale_factor^2", "below 2^27", "'features'");
  // Each dim fits in int32 but their product in 64 bits is checked too.
  CarafeAttributes const wide{1, 1, 64};
  CHECK_THROWS(PluginInputError,
               checkCarafeInputs(wide, makeShape({1, 1, 40000000, 40000000}),
                                 makeShape({1, 1, kUnknownDim, kUnknownDim})),
               "does not fit in int32");
  CHECK_THROWS(PluginInputError,
               checkCarafeInputs(wide, makeShape({1, 1, 30000, 30000}),
                                 makeShape({1, 1, kUnknownDim, kUnknownDim})),
               "below 2^27");
  // Unknown dims (build time) skip the plane check.
  checkCarafeInputs(wide, makeShape({1, 1, kUnknownDim, 30000}),
                    makeShape({1, 1, kUnknownDim, kUnknownDim}));
}

TEST(carafe_reports_each_missing_field) {
  CarafeFields f;
  for (char const* name : {"kernel_size", "group_size", "scale_factor"}) {
    CHECK_THROWS(PluginInputError, parseCarafeFields(without(f.views(), name)), "CARAFE",
                 "missing field", name);
  }
  CHECK_THROWS(PluginInputError, parseCarafeFields({}), "missing field 'kernel_size'");
}

TEST(carafe_rejects_mistyped_fields) {
  CarafeFields f;
  float const asFloat = 5.f;
  char const asText[] = "5";
  auto views = f.views();
  views[0] = {"kernel_size", FieldType::kFloat32, &asFloat, 1};
  CHECK_THROWS(PluginInputError, parseCarafeFields(views), "kernel_size", "int32", "float32");
  views[0] = {"kernel_size", FieldType::kChar, asText, 2};
  CHECK_THROWS(PluginInputError, parseCarafeFields(views), "kernel_size", "char");
  views[0] = {"kernel_size", FieldType::kInt32, &f.k, 2};  // a list, not a scalar
  CHECK_THROWS(PluginInputError, parseCarafeFields(views), "kernel_size", "exactly one", "got 2");
  views[0] = {"kernel_size", FieldType::kInt32, nullptr, 1};
  CHECK_THROWS(PluginInputError, parseCarafeFields(views), "kernel_size", "got 0");
  int64_t const huge = int64_t(1) << 40;
  views[0] = {"kernel_size", FieldType::kInt64, &huge, 1};
  CHECK_THROWS(PluginInputError, parseCarafeFields(views), "kernel_size", "int32");
}

TEST(carafe_rejects_unknown_and_repeated_fields) {
  CarafeFields f;
  auto views = f.views();
  int32_t const one = 1;
  views.push_back({"kernel", FieldType::kInt32, &one, 1});
  CHECK_THROWS(PluginInputError, parseCarafeFields(views), "unknown field 'kernel'",
               "kernel_size, group_size, scale_factor");
  views = f.views();
  views.push_back(views[1]);
  CHECK_THROWS(PluginInputError, parseCarafeFields(views), "'group_size' given twice");
}

TEST(carafe_serialization_round_trips) {
  for (CarafeAttributes const a : {CarafeAttributes{5, 1, 2}, CarafeAttributes{3, 4, 4},
                                   CarafeAttributes{1, 16, 1}, CarafeAttributes{7, 2, 3}}) {
    std::vector<FieldView> const views = carafeFieldsToSerialize(a);
    CHECK_EQ(views.size(), carafeFieldSpecs().size());
    for (size_t i = 0; i < views.size(); ++i) {
      CHECK(views[i].name == carafeFieldSpecs()[i].name);  // one list for create and serialize
      CHECK(views[i].type == FieldType::kInt32 && views[i].length == 1);
    }
    CHECK(parseCarafeFields(views) == a);
  }
  CHECK_STR_EQ(carafeDescription({5, 1, 2}), "kernel_size=5,group_size=1,scale_factor=2");
}

TEST(carafe_shape_rule_and_checks) {
  CarafeAttributes const a{5, 2, 2};
  Shape const features = makeShape({3, 8, 7, 9});
  Shape const masks = makeShape({3, 2 * 25, 14, 18});
  checkCarafeInputs(a, features, masks);  // consistent: no throw
  Shape const in[] = {features, masks};
  CHECK(applyShapeRule(carafeOutputRule(a), in, 2) == makeShape({3, 8, 14, 18}));

  // Dynamic dims are unknown at build time: checks skip them and the rule keeps them unknown.
  Shape const dynFeatures = makeShape({kUnknownDim, 8, kUnknownDim, 9});
  Shape const dynMasks = makeShape({kUnknownDim, 50, kUnknownDim, kUnknownDim});
  checkCarafeInputs(a, dynFeatures, dynMasks);
  Shape const dynIn[] = {dynFeatures, dynMasks};
  CHECK(applyShapeRule(carafeOutputRule(a), dynIn, 2) ==
        makeShape({kUnknownDim, 8, kUnknownDim, 18}));
}

TEST(carafe_shape_errors_name_the_input) {
  CarafeAttributes const a{5, 3, 2};
  Shape const masks = makeShape({2, 75, 8, 8});
  CHECK_THROWS(PluginInputError, checkCarafeInputs(a, makeShape({2, 8, 4, 4}), masks),
               "group_size 3 must divide", "'features'", "got 8 channels");
  CHECK_THROWS(PluginInputError,
               checkCarafeInputs(a, makeShape({2, 9, 4, 4}), makeShape({2, 74, 8, 8})),
               "'masks'", "3 * 5^2 = 75", "got 74");
  CHECK_THROWS(PluginInputError,
               checkCarafeInputs(a, makeShape({2, 9, 4, 4}), makeShape({2, 75, 9, 8})),
               "height", "'masks'", "2 x 4 = 8", "got 9");
  CHECK_THROWS(PluginInputError,
               checkCarafeInputs(a, makeShape({2, 9, 4, 4}), makeShape({2, 75, 8, 7})),
               "width", "got 7");
  CHECK_THROWS(PluginInputError,
               checkCarafeInputs(a, makeShape({2, 9, 4, 4}), makeShape({3, 75, 8, 8})),
               "batch", "got 3");
  CHECK_THROWS(PluginInputError, checkCarafeInputs(a, makeShape({9, 4, 4}), masks),
               "'features' must have 4 dimensions", "[9, 4, 4]");
  CHECK_THROWS(PluginInputError,
               checkCarafeInputs(a, makeShape({2, 9, int64_t(1) << 33, 4}), masks), "int32");
}

TEST(type_rules_follow_input_zero) {
  using E = ElementType;
  using L = Layout;
  // Position 0 chooses float32 or float16; every later position must repeat it, linear only.
  for (E t : {E::kFloat32, E::kFloat16}) {
    TensorFormatDesc io[4] = {{t, L::kLinear}, {t, L::kLinear}, {t, L::kLinear}, {t, L::kLinear}};
    for (int32_t pos = 0; pos < 4; ++pos) CHECK(supportsFormatCombination(pos, io, 3, 1));
    io[0].layout = L::kOther;
    CHECK(!supportsFormatCombination(0, io, 3, 1));
    io[0].layout = L::kLinear;
    io[2].type = (t == E::kFloat32 ? E::kFloat16 : E::kFloat32);
    CHECK(!supportsFormatCombination(2, io, 3, 1));
    io[2] = {t, L::kOther};
    CHECK(!supportsFormatCombination(2, io, 3, 1));
  }
  TensorFormatDesc other[2] = {{E::kOther, L::kLinear}, {E::kOther, L::kLinear}};
  CHECK(!supportsFormatCombination(0, other, 1, 1));
  CHECK(!supportsFormatCombination(5, other, 1, 1));  // out of range
  CHECK(!supportsFormatCombination(-1, other, 1, 1));

  std::vector<std::string> const names = {"features", "masks"};
  E const halves[] = {E::kFloat16, E::kFloat16};
  CHECK(outputElementType("CARAFE", names, halves, 2) == E::kFloat16);
  E const floats[] = {E::kFloat32, E::kFloat32};
  CHECK(outputElementType("CARAFE", names, floats, 2) == E::kFloat32);
  E const mixed[] = {E::kFloat32, E::kFloat16};
  CHECK_THROWS(PluginInputError, outputElementType("CARAFE", names, mixed, 2), "'masks'",
               "float16", "'features' is float32");
  E const bad[] = {E::kOther, E::kOther};
  CHECK_THROWS(PluginInputError, outputElementType("CARAFE", names, bad, 2), "'features'",
               "float32 or float16");
}

TEST(criss_cross_fields_and_shapes) {
  parseCrissCrossFields({});
  int32_t const one = 1;
  CHECK_THROWS(PluginInputError, parseCrissCrossFields({{"gamma", FieldType::kInt32, &one, 1}}),
               "CrissCrossAttention", "unknown field 'gamma'", "no fields");

  Shape const q = makeShape({2, 4, 5, 7}), v = makeShape({2, 16, 5, 7});
  checkCrissCrossInputs(q, q, v);
  Shape const in[] = {q, q, v};
  CHECK(applyShapeRule(crissCrossOutputRule(), in, 3) == v);
  checkCrissCrossInputs(makeShape({kUnknownDim, 4, kUnknownDim, kUnknownDim}),
                        makeShape({kUnknownDim, 4, kUnknownDim, kUnknownDim}),
                        makeShape({kUnknownDim, 16, kUnknownDim, kUnknownDim}));

  CHECK_THROWS(PluginInputError, checkCrissCrossInputs(q, makeShape({2, 3, 5, 7}), v),
               "channels of key and query", "'key'", "got 3");
  CHECK_THROWS(PluginInputError, checkCrissCrossInputs(q, q, makeShape({2, 16, 6, 7})),
               "height", "'value'", "got 6");
  CHECK_THROWS(PluginInputError, checkCrissCrossInputs(q, q, makeShape({3, 16, 5, 7})),
               "batch", "'value'");
  CHECK_THROWS(PluginInputError, checkCrissCrossInputs(q, q, makeShape({2, 16, 5})),
               "'value' must have 4 dimensions");

  // One channel plane below 2^27 elements (the ops' limit), checked once H and W are known.
  Shape const atLimit = makeShape({1, 1, 8192, 16383}), over = makeShape({1, 1, 8192, 16384});
  checkCrissCrossInputs(atLimit, atLimit, atLimit);
  CHECK_THROWS(PluginInputError, checkCrissCrossInputs(over, over, over), "H*W = 8192*16384",
               "below 2^27", "'query'");
  Shape const huge = makeShape({1, 1, 2147483647, 2147483647});
  CHECK_THROWS(PluginInputError, checkCrissCrossInputs(huge, huge, huge), "below 2^27");
}

CHECK_MAIN()
