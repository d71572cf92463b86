// region_demo: the losses of culoss, value and gradient, on a synthetic segmentation batch — on the CPU, and on the GPU too when one is present (built with CUDA).
//
// The batch: 2 images of 64x64 with 4 classes (background, a large square, a small disc, and
// a class absent from image 1), logits from a noisy "model" that is right most of the time.
#include <culoss/culoss.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#ifdef CULOSS_EXAMPLE_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace {

constexpr int64_t kN = 2, kC = 4, kH = 64, kW = 64;

struct Batch {
  std::vector<float> logits;    // N x C x H x W
  std::vector<int64_t> labels;  // N x H x W, -100 = ignored
};

Batch make_batch() {
  Batch b;
  b.logits.resize(kN * kC * kH * kW);
  b.labels.resize(kN * kH * kW);
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  for (int64_t n = 0; n < kN; ++n)
    for (int64_t y = 0; y < kH; ++y)
      for (int64_t x = 0; x < kW; ++x) {
        int64_t label = 0;
        if (y >= 8 && y < 36 && x >= 8 && x < 36) label = 1;  // a large square
        if ((y - 48) * (y - 48) + (x - 46 + 4 * n) * (x - 46 + 4 * n) < 25)
          label = 2;                                 // small disc
        if (n == 0 && y >= 50 && x < 12) label = 3;  // only in image 0
        if (y == 0) label = -100;                    // an unlabelled row
        b.labels[(n * kH + y) * kW + x] = label;
        for (int64_t c = 0; c < kC; ++c)
          b.logits[((n * kC + c) * kH + y) * kW + x] = (c == label ? 2.0f : 0.0f) + noise(rng);
      }
  return b;
}

DLTensor view(void* data, DLDevice dev, DLDataType dt, int32_t ndim, int64_t* shape) {
  DLTensor t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.device = dev;
  t.ndim = ndim;
  t.dtype = dt;
  t.shape = shape;
  return t;
}

struct KindRow {
  culoss_kind kind;
  const char* name;
};
const KindRow kKinds[] = {{CULOSS_DICE, "Dice"},
                          {CULOSS_JACCARD, "Jaccard"},
                          {CULOSS_TVERSKY, "Tversky"},
                          {CULOSS_FOCAL_TVERSKY, "FocalTversky"},
                          {CULOSS_GENERALIZED_DICE, "GeneralizedDice"},
                          {CULOSS_CROSS_ENTROPY, "CrossEntropy"},
                          {CULOSS_FOCAL, "Focal(softmax)"},
                          {CULOSS_MARGINAL_CE, "MarginalCE"},
                          {CULOSS_SUM, "Dice+CE (fused)"}};

bool is_region(culoss_kind k) { return k >= CULOSS_DICE && k <= CULOSS_GENERALIZED_DICE; }

// A descriptor for one row: softmax everywhere; the sum is Dice + 1.0 * cross-entropy.
culoss_loss make_loss(culoss_kind kind) {
  culoss_loss l = nullptr;
  culoss_loss_create(&l, kind);
  if (kind == CULOSS_FOCAL) culoss_loss_set_int(l, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX);
  if (kind == CULOSS_SUM) {
    culoss_loss dice = nullptr, ce = nullptr;
    culoss_loss_create(&dice, CULOSS_DICE);
    culoss_loss_create(&ce, CULOSS_CROSS_ENTROPY);
    culoss_loss_add_term(l, dice, 1.0);
    culoss_loss_add_term(l, ce, 1.0);
    culoss_loss_destroy(dice);
    culoss_loss_destroy(ce);
  }
  return l;
}

// Runs every kind on one device; input/target/grad point to memory on that device.
bool run_all(const char* device_name, DLDevice dev, void* logits, void* labels, void* grad,
             float (*grad_norm)(void*, int64_t)) {
  int64_t in_shape[4] = {kN, kC, kH, kW}, lab_shape[3] = {kN, kH, kW};
  DLTensor input = view(logits, dev, DLDataType{kDLFloat, 32, 1}, 4, in_shape);
  DLTensor target = view(labels, dev, DLDataType{kDLInt, 64, 1}, 3, lab_shape);
  DLTensor grad_t = view(grad, dev, DLDataType{kDLFloat, 32, 1}, 4, in_shape);
  float loss = 0.0f;
  DLTensor loss_out = view(&loss, DLDevice{kDLCPU, 0}, DLDataType{kDLFloat, 32, 1}, 0, nullptr);
  std::printf("\n%s: softmax logits %lldx%lldx%lldx%lld, int64 labels with an ignored row\n",
              device_name, (long long)kN, (long long)kC, (long long)kH, (long long)kW);
  std::printf("  %-16s %12s %12s %14s\n", "loss", "value", "batch=1", "|grad|_2");
  for (const KindRow& k : kKinds) {
    culoss_loss l = make_loss(k.kind);
    double values[2] = {0.0, 0.0};
    float norm = 0.0f;
    for (int batch = 0; batch < (is_region(k.kind) ? 2 : 1); ++batch) {
      if (is_region(k.kind)) culoss_loss_set_int(l, CULOSS_PARAM_BATCH, batch);
      culoss_status s = culoss_compute(l, &input, &target, nullptr, &loss_out,
                                       batch ? nullptr : &grad_t, 1.0, nullptr, 0, nullptr);
      if (s != CULOSS_SUCCESS) {
        std::printf("  %-16s failed: %s: %s\n", k.name, culoss_status_string(s),
                    culoss_last_error());
        culoss_loss_destroy(l);
        return false;
      }
      values[batch] = loss;
      if (!batch) norm = grad_norm(grad, kN * kC * kH * kW);
    }
    if (is_region(k.kind))
      std::printf("  %-16s %12.6f %12.6f %14.6e\n", k.name, values[0], values[1], norm);
    else
      std::printf("  %-16s %12.6f %12s %14.6e\n", k.name, values[0], "-", norm);
    culoss_loss_destroy(l);
  }
  return true;
}

float host_norm(void* g, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i)
    s += double(static_cast<float*>(g)[i]) * static_cast<float*>(g)[i];
  return static_cast<float>(std::sqrt(s));
}

#ifdef CULOSS_EXAMPLE_WITH_CUDA
float device_norm(void* g, int64_t n) {
  std::vector<float> h(n);
  cudaMemcpy(h.data(), g, n * sizeof(float), cudaMemcpyDeviceToHost);
  return host_norm(h.data(), n);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool cpu_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--cpu")) {
      cpu_only = true;
    } else {
      std::fprintf(stderr, "usage: %s [--cpu]\n  --cpu  run on the CPU only, even with a GPU\n",
                   argv[0]);
      return 2;
    }
  }
  std::printf("culoss %d.%d.%d — losses and their gradients\n", culoss_version() / 10000,
              culoss_version() / 100 % 100, culoss_version() % 100);
  Batch b = make_batch();
  std::vector<float> grad(b.logits.size());
  if (!run_all("CPU", DLDevice{kDLCPU, 0}, b.logits.data(), b.labels.data(), grad.data(),
               host_norm))
    return 1;
#ifdef CULOSS_EXAMPLE_WITH_CUDA
  int devices = 0;
  if (!cpu_only && cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) {
    void *d_logits, *d_labels, *d_grad;
    cudaMalloc(&d_logits, b.logits.size() * sizeof(float));
    cudaMalloc(&d_labels, b.labels.size() * sizeof(int64_t));
    cudaMalloc(&d_grad, grad.size() * sizeof(float));
    cudaMemcpy(d_logits, b.logits.data(), b.logits.size() * sizeof(float), cudaMemcpyHostToDevice);
    cudaMemcpy(d_labels, b.labels.data(), b.labels.size() * sizeof(int64_t),
               cudaMemcpyHostToDevice);
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    const bool ok =
        run_all(prop.name, DLDevice{kDLCUDA, 0}, d_logits, d_labels, d_grad, device_norm);
    cudaFree(d_logits);
    cudaFree(d_labels);
    cudaFree(d_grad);
    if (!ok) return 1;
  } else if (!cpu_only) {
    std::printf("\n(no CUDA device found: CPU only)\n");
  }
#else
  (void)cpu_only;
  std::printf("\n(built without CUDA: CPU only)\n");
#endif
  return 0;
}
