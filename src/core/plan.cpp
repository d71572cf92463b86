// Builds the Program of a call: one term per kind (COMBO expanded into a BCE-like term, a Dice
// term and a constant; a SUM flattened), statistics and coefficient slots and the output shape.
// Launch geometry is the backend's: it carves its partials after the plan's buffers.
#include "core/plan.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace culoss {

namespace {
int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  return count;
}

// loss_out's shape: the input's extents along the kind's output axes (culoss_compute_stats
// writes statistics only).
std::vector<int64_t> output_shape(const Call& call) {
  std::vector<int64_t> shape;
  if (call.exporting) return shape;
  const int64_t ndim = static_cast<int64_t>(call.input.shape.size());
  for (int64_t a : output_axes(call.loss->kind, call.loss->params, ndim, call.class_axis))
    shape.push_back(call.input.shape[a]);
  return shape;
}

class Builder {
 public:
  Builder(const Call& call, Plan& plan) : call_(call), plan_(plan) {}

  void add(const culoss_loss_s& d, double weight) {
    const KindInfo& k = kind_info(d.kind);
    switch (k.family) {
      case Family::Sum:
        for (size_t i = 0; i < d.terms.size(); ++i) add(d.terms[i], weight * d.weights[i]);
        return;
      case Family::Lovasz:  // a sort-based kind: computed on its own, not as a fused term
        fail(CULOSS_ERROR_NOT_SUPPORTED, "a CULOSS_SUM cannot hold ", k.name,
             " in this version of culoss: compute it in its own call and add the gradients");
      case Family::Composite:
        combo(d, k, weight);
        return;
      case Family::Region:
      case Family::Elementwise:
      case Family::Distance:
        push(reads_binary_targets(d.kind, d.params) ? k.binary_term : k.term, d, k, weight,
             d.params.reduction);
        if (k.term == TK_TOPK_CE) top_k(d, k);
        return;
    }
  }

 private:
  // COMBO: ce_ratio · L_wce − (1 − ce_ratio) · (1 − Dice loss), L_wce the α-weighted binary
  // cross-entropy without class weights or smoothing.
  void combo(const culoss_loss_s& d, const KindInfo& k, double weight) {
    const Params& p = d.params;
    push(TK_BCE, d, k, weight * p.ce_ratio, CULOSS_REDUCTION_MEAN, [&](TermSpec& t) {
      t.label_smoothing = 0.0;
      t.pos_scale = p.alpha;
      t.neg_scale = 1.0 - p.alpha;
      t.class_weight_offset = -1;
    });
    push(TK_REGION, d, k, weight * (1.0 - p.ce_ratio), CULOSS_REDUCTION_MEAN);
    plan_.prog.constant -= weight * (1.0 - p.ce_ratio);
  }

  // Appends term unit `unit` with the parameters of `d`; `adjust` changes them before the
  // statistics slots are laid out.
  template <class Adjust = void (*)(TermSpec&)>
  TermSpec& push(
      int unit, const culoss_loss_s& d, const KindInfo& k, double weight, int64_t reduction,
      Adjust adjust = [](TermSpec&) {}) {
    Program& prog = plan_.prog;
    if (prog.count == kMaxTerms)
      fail(CULOSS_ERROR_NOT_SUPPORTED, "a CULOSS_SUM may hold at most ", kMaxTerms,
           " terms (COMBO counts as 2)");
    const Params& p = d.params;
    TermSpec& t = prog.term[prog.count++];
    t = TermSpec{};
    t.kind = unit;
    t.activation = static_cast<int>(p.activation);
    t.reduction = static_cast<int>(reduction);
    t.weight = weight;
    t.alpha = p.alpha;
    t.gamma = p.gamma;
    t.label_smoothing = p.label_smoothing;
    t.batch_frequency = p.class_balance == CULOSS_BALANCE_BATCH_FREQUENCY;
    t.pos_scale = 1.0;
    t.neg_scale = 1.0;
    t.class_weight_offset = weights(p.class_weights, "CULOSS_PARAM_CLASS_WEIGHTS");
    t.pos_weight_offset = weights(p.pos_weight, "CULOSS_PARAM_POS_WEIGHT");
    t.stat_offset = prog.stat_width;
    t.value_offset = -1;
    t.export_offset = -1;
    t.coef_offset = prog.coef_width;
    t.include_background = p.include_background != 0;
    const Layout& L = call_.layout;
    t.static_count = L.N * L.C * L.P;
    adjust(t);
    visit_term(unit, [&](auto u) {
      using Unit = decltype(u);
      if (Unit::kRegionParams) region(t, p, k.region);  // before count_slots, which reads it
      if (Unit::kMaps > 0) geometry(t, p, k, Unit::kMaps, Unit::kMinAxes, Unit::kMapGrad);
      t.coef_count = Unit::kCoefs;
      // Statistics: the unit's counts when finalize needs them, and distributed its value sums.
      t.needs_target_stats = Unit::needs_counts(t, call_.distributed, call_.index_target);
      if (!t.needs_target_stats && !call_.distributed) return;
      t.value_offset = t.stat_offset + Unit::count_slots(t);
      t.stat_count = Unit::count_slots(t) + (call_.distributed ? Unit::kValueSlots : 0);
    });
    prog.coef_width += t.coef_count;
    prog.stat_width += t.stat_count;
    return t;
  }

  // TOPK_CE: its pixels are chosen over the whole batch before the passes (one selection per
  // call, so one such term), which no sum of per-rank statistics can reproduce.
  void top_k(const culoss_loss_s& d, const KindInfo& k) {
    if (call_.distributed)
      fail(CULOSS_ERROR_NOT_SUPPORTED, k.name,
           " keeps the pixels above a threshold taken over the whole batch; that threshold is "
           "global, so the loss has no statistics to sum across ranks (culoss_compute_stats, "
           "culoss_compute_from_stats): compute it with culoss_compute on the gathered batch");
    if (plan_.top_k >= 0)
      fail(CULOSS_ERROR_NOT_SUPPORTED, "a CULOSS_SUM may hold one ", k.name,
           " term (each call runs one selection of pixels)");
    plan_.top_k = plan_.prog.count - 1;
    TermSpec& t = plan_.prog.term[plan_.top_k];
    t.top_fraction = d.params.top_fraction;
    t.selected = nullptr;  // bound per call (bind_program)
  }

  // A term with geometry maps: its maps, the grid of one (image, class) (the input's spatial
  // axes: its shape without the batch and class axes) and the geometry parameters.
  void geometry(TermSpec& t, const Params& p, const KindInfo& k, int maps, int min_axes,
                bool map_grad) {
    Program& prog = plan_.prog;
    const std::vector<int64_t>& shape = call_.pixel_shape;  // (N, spatial...)
    const int axes = static_cast<int>(shape.size()) - 1;
    if (axes > kMaxSpatialAxes)
      fail(CULOSS_ERROR_NOT_SUPPORTED, k.name, " supports 1 to ", kMaxSpatialAxes,
           " spatial axes; input ", shape_string(call_.input.shape), " has ", axes,
           " (the shape without its batch and class axes)");
    if (axes < min_axes)
      fail(CULOSS_ERROR_NOT_SUPPORTED, k.name, " needs ",
           min_axes == 1 ? "1 to 3 spatial axes" : "2 or 3 spatial axes", "; input ",
           shape_string(call_.input.shape), " has ", axes,
           " (the shape without its batch and class axes)");
    if (!p.spacing.empty() && static_cast<int>(p.spacing.size()) != axes)
      fail(CULOSS_ERROR_SHAPE_MISMATCH, "CULOSS_PARAM_SPACING has ", p.spacing.size(),
           " values but input ", shape_string(call_.input.shape), " has ", axes, " spatial axes");
    Grid& g = prog.grid;
    g.k = axes;
    g.P = 1;
    for (int a = axes - 1; a >= 0; --a) {
      g.extent[a] = shape[a + 1];
      g.stride[a] = g.P;
      g.P *= g.extent[a];
    }
    for (int a = 0; a < kMaxSpatialAxes; ++a) {
      const double s = a < axes && !p.spacing.empty() ? p.spacing[a] : 1.0;
      t.spacing2[a] = s * s;
    }
    t.iterations = static_cast<int>(p.iterations);
    t.map_offset = prog.map_width;
    t.map_count = maps;
    prog.map_width += maps;
    prog.any_map_grad |= map_grad;
  }

  void region(TermSpec& t, const Params& p, int kind) {
    const Layout& L = call_.layout;
    RegionParams& rp = t.region;
    rp.kind = kind;
    rp.reduction = t.reduction;
    rp.weight_type = static_cast<int>(p.weight_type);
    rp.squared = p.squared_denominator != 0;
    rp.batch = p.batch != 0;
    rp.micro = p.average == CULOSS_AVERAGE_MICRO;
    rp.include_background = p.include_background != 0;
    rp.skip_empty = p.skip_empty != 0;
    rp.soft_label = p.soft_label != 0;
    rp.smooth_nr = p.smooth_nr;
    rp.smooth_dr = p.smooth_dr;
    rp.alpha = p.alpha;
    rp.beta = p.beta;
    rp.gamma = p.gamma;
    rp.N = L.N;
    rp.C = L.C;
    rp.class_weights = nullptr;  // bound per call (bind_program)
    rp.class_totals = nullptr;
    rp.stat_stride = 0;  // set once the statistics row width is final
    rp.stat_offset = t.stat_offset;
    plan_.prog.stats_need_prediction = true;
    plan_.class_coef_count = std::max(plan_.class_coef_count, rp.image_groups() * L.C);
    plan_.group_count = std::max(plan_.group_count, rp.groups());
  }

  int64_t weights(const std::vector<double>& w, const char* name) {
    if (w.empty()) return -1;
    if (static_cast<int64_t>(w.size()) != call_.layout.C)
      fail(CULOSS_ERROR_SHAPE_MISMATCH, name, " has ", w.size(),
           " values but input has C = ", call_.layout.C, " classes");
    const int64_t offset = static_cast<int64_t>(plan_.weight_table.size());
    plan_.weight_table.insert(plan_.weight_table.end(), w.begin(), w.end());
    return offset;
  }

  const Call& call_;
  Plan& plan_;
};

}  // namespace

Plan make_plan(const Call& call) {
  Plan plan;
  Program& prog = plan.prog;
  prog = Program{};
  Builder(call, plan).add(*call.loss, 1.0);
  const Layout& L = call.layout;
  plan.class_coef_count = std::max(plan.class_coef_count, L.C);
  // Distributed: element-wise values are statistics (they need the prediction), and the
  // exported vector is C x stat_width class totals, each term's extra slots, then the pixel
  // count.
  prog.value_in_stats = call.distributed;
  prog.export_count = call.distributed ? L.C * prog.stat_width : 0;
  for (int i = 0; i < prog.count; ++i) {
    TermSpec& t = prog.term[i];
    t.region.stat_stride = prog.stat_width;
    if (t.activation == ACT_SOFTMAX) prog.any_softmax = true;
    if (t.stat_count > 0) prog.has_stats = true;
    visit_term(t.kind, [&](auto unit) {
      using Unit = decltype(unit);
      prog.any_marginal |= Unit::kNeedsArgmax;
      prog.any_elementwise |= Unit::kElementValue;
      if (!call.distributed) return;
      prog.stats_need_prediction |= Unit::kElementValue;
      if (Unit::kExportSlots > 0) t.export_offset = prog.export_count;
      prog.export_count += Unit::kExportSlots;
    });
  }
  if (call.distributed) prog.export_pixels = prog.export_count++;

  // NONE: a single term (a SUM's terms are MEAN or SUM) writes its own shape.
  plan.output_shape = output_shape(call);
  prog.none_mode = NONE_OFF;
  const TermSpec& t0 = prog.term[0];
  if (call.loss->kind != CULOSS_SUM && t0.reduction == RED_NONE && !call.exporting)
    visit_term(t0.kind, [&](auto unit) { prog.none_mode = decltype(unit)::kNone; });
  plan.output_count = element_count(plan.output_shape);

  plan.element_pass = !call.exporting && (call.grad.present || prog.any_elementwise);
  plan.group_count = std::max<int64_t>(plan.group_count, 1);
  return plan;
}

Buffers carve(Carver& carver, const Call& call, const Plan& plan) {
  const Layout& L = call.layout;
  const Program& prog = plan.prog;
  Buffers b{};
  b.weights = carver.take<double>(static_cast<int64_t>(plan.weight_table.size()));
  b.stats = carver.take<double>(L.N * L.C * prog.stat_width);
  b.coefs = carver.take<double>(L.N * L.C * prog.coef_width);
  b.scale = carver.take<double>(kMaxTerms);
  b.class_coef_a = carver.take<double>(plan.class_coef_count);
  b.class_coef_b = carver.take<double>(plan.class_coef_count);
  b.group_loss = carver.take<double>(plan.group_count);
  b.group_weight = carver.take<double>(plan.group_count);
  b.value = carver.take<double>(1);
  b.out_values = carver.take<double>(plan.output_count);
  b.selected = carver.take<unsigned char>(plan.top_k >= 0 ? L.N * L.P : 0);
  b.geo = carve_geometry(carver, call, plan);
  return b;
}

GeometryBuffers carve_geometry(Carver& carver, const Call& call, const Plan& plan) {
  const Layout& L = call.layout;
  const Program& prog = plan.prog;
  bool distance = false, skeleton = false;
  for (int i = 0; i < prog.count; ++i)
    visit_term(prog.term[i].kind, [&](auto unit) {
      distance |= decltype(unit)::kGeometry == GEO_DISTANCE;
      skeleton |= decltype(unit)::kGeometry == GEO_SKELETON;
    });
  const int64_t count = prog.map_width > 0 ? L.N * L.C * L.P : 0;
  GeometryBuffers g{};
  g.images = L.N * L.C;
  g.P = L.P;
  g.maps = carver.take<double>(prog.map_width * count);
  const int planes = skeleton ? kSkeletonPlanes : distance ? kDistancePlanes : 0;
  for (int i = 0; i < planes; ++i) g.plane[i] = carver.take<double>(count);
  for (int i = 0; i < (skeleton ? kSkeletonSelections : 0); ++i)
    g.sel[i] = carver.take<Selection>(count);
  g.edt = carver.take<double>(distance && count > 0 ? distance_scratch(prog.grid, g.images) : 0);
  return g;
}

Program bind_program(const Plan& plan, const Buffers& b, const Call& call) {
  Program prog = plan.prog;
  prog.maps = prog.map_width > 0 ? b.geo.maps : nullptr;
  for (int i = 0; i < prog.count; ++i) {  // (read by region terms only)
    TermSpec& t = prog.term[i];
    t.region.class_weights =
        t.class_weight_offset >= 0 ? b.weights + t.class_weight_offset : nullptr;
    t.region.class_totals = call.global_stats;
  }
  if (plan.top_k >= 0) prog.term[plan.top_k].selected = b.selected;
  return prog;
}

FinalizeBuffers finalize_buffers(const Buffers& b, const Call& call, void* none_out,
                                 DType none_dtype) {
  FinalizeBuffers f{};
  f.stats = b.stats;
  f.weights = b.weights;
  f.coefs = b.coefs;
  f.scale = b.scale;
  f.class_coef_a = b.class_coef_a;
  f.class_coef_b = b.class_coef_b;
  f.group_loss = b.group_loss;
  f.group_weight = b.group_weight;
  f.value = b.value;
  f.none_out = none_out;
  f.none_dtype = none_dtype;
  f.global = call.global_stats;
  f.export_vec = call.export_stats;
  f.pixels = call.layout.N * call.layout.P;
  return f;
}

}  // namespace culoss

namespace culoss {

bool is_lovasz_kind(culoss_kind kind) { return kind_info(kind).family == Family::Lovasz; }

LovaszPlan make_lovasz_plan(const Call& call) {
  const Params& p = call.loss->params;
  const Layout& L = call.layout;
  LovaszPlan lp;
  lp.shape = LovaszShape{L.N, L.C, L.P, p.per_image != 0};
  lp.hinge = reads_binary_targets(call.loss->kind, p);  // the hinge: one binary problem per channel
  lp.activation = lp.hinge ? ACT_NONE : static_cast<int>(p.activation);
  lp.reduction = static_cast<int>(p.reduction);
  if (call.distributed && !lp.shape.per_image)
    fail(CULOSS_ERROR_NOT_SUPPORTED, kind_name(call.loss->kind),
         " with PER_IMAGE=0 pools the whole batch into one sort, so it has no statistics to sum "
         "across ranks; set CULOSS_PARAM_PER_IMAGE=1");
  if (call.exporting) lp.reduction = RED_SUM;  // the statistics: [Σ problem losses, problems]
  lp.classes_all = p.classes == CULOSS_CLASSES_ALL;
  lp.output_shape = output_shape(call);
  lp.output_count = element_count(lp.output_shape);
  return lp;
}

CallPlan make_call_plan(const Call& call) {
  if (is_lovasz_kind(call.loss->kind)) return make_lovasz_plan(call);
  return make_plan(call);
}

}  // namespace culoss
