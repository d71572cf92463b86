// TOPK_CE's selection on the CPU. Each pixel's key is computed in chunks on the thread pool;
// the K-th smallest key τ is found by a radix select, up to eight passes of 256-bin digit
// histograms counted per chunk and added in chunk order (it stops at the digit whose bucket holds
// just the keys still to take); then every key below τ is selected, and of the
// keys equal to τ the lowest pixels, by a count of ties per chunk added in chunk order. All
// sums are of integers and every flag is written by one chunk: any number of threads gives
// the same selection.
#include "cpu/topk.hpp"

#include <algorithm>

#include "core/dispatch.hpp"
#include "cpu/fast_path.hpp"
#include "cpu/thread_pool.hpp"
#include "kernels/common/topk.cuh"

namespace culoss::cpu {

namespace {
constexpr int64_t kDigits = 256;
constexpr int64_t kSlots = kDigits + 1;  // per chunk: the digit histogram, then one count

Partition key_chunks(const Layout& L) { return Partition(L.N * L.P, chunk_pixels(L.C)); }
}  // namespace

TopKScratch carve_top_k(Carver& carver, const Call& call, const Plan& plan) {
  const Layout& L = call.layout;
  const bool on = plan.top_k >= 0;
  TopKScratch s;
  s.keys = carver.take<uint64_t>(on ? L.N * L.P : 0);
  s.counts = carver.take<int64_t>(on ? key_chunks(L).count() * kSlots : 0);
  return s;
}

void select_top_k(const Call& call, const Plan& plan, const Buffers& b, const TopKScratch& s,
                  const FastCall* fast) {
  const Layout& L = call.layout;
  const TermSpec& ts = plan.prog.term[plan.top_k];
  const ElementArgs a{L, call.target_view(), call.pixel_weight_data()};
  const double* cw = ts.class_weight_offset >= 0 ? b.weights + ts.class_weight_offset : nullptr;
  const Partition chunks = key_chunks(L);
  const int64_t count = chunks.count();
  uint64_t* keys = s.keys;
  int64_t* slots = s.counts;

  // Keys, and the counted pixels of each chunk.
  if (fast)
    for_each_chunk(chunks, [&](int64_t i, int64_t begin, int64_t end) {
      slots[i * kSlots + kDigits] = fast_topk_keys_chunk(*fast, begin, end, keys);
    });
  else
    dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(call.input.data);
    for_each_chunk(chunks, [&](int64_t i, int64_t begin, int64_t end) {
      int64_t counted_here = 0;
      for (int64_t pix = begin; pix < end; ++pix) {
        bool counted = false;
        const double loss = topk_pixel_loss<double>(ts, a, cw, x, pix, counted);
        keys[pix] = counted ? topk_key(loss) : kTopKLeftOut;
        counted_here += counted ? 1 : 0;
      }
      slots[i * kSlots + kDigits] = counted_here;
    });
  });
  int64_t M = 0;
  for (int64_t i = 0; i < count; ++i) M += slots[i * kSlots + kDigits];
  const int64_t K = topk_count(ts.top_fraction, M);

  // τ = the K-th smallest key, digit by digit from the top; `rank` ends as the number of pixels
  // with key τ that are selected. Once the digit's bucket holds exactly the `rank` keys still
  // to take, every key with that prefix is selected and the lower digits cannot change the
  // selection: τ stays a prefix (`mask` covers its digits) and nothing is a tie.
  uint64_t tau = 0, mask = 0;
  int64_t rank = K;
  bool whole_bucket = false;
  if (K == 0) {
    tau = 0;  // nothing below it; no tie taken
  } else {
    for (int shift = 56; shift >= 0 && !whole_bucket; shift -= 8) {
      for_each_chunk(chunks, [&](int64_t i, int64_t begin, int64_t end) {
        int64_t* h = slots + i * kSlots;
        std::fill(h, h + kDigits, 0);
        for (int64_t pix = begin; pix < end; ++pix)
          if ((keys[pix] & mask) == tau) ++h[(keys[pix] >> shift) & 0xff];
      });
      int64_t below = 0, digit = 0, in_digit = 0;
      for (; digit < kDigits; ++digit) {
        in_digit = 0;
        for (int64_t i = 0; i < count; ++i) in_digit += slots[i * kSlots + digit];
        if (below + in_digit >= rank) break;
        below += in_digit;
      }
      rank -= below;
      whole_bucket = in_digit == rank;
      tau |= static_cast<uint64_t>(digit) << shift;
      mask |= uint64_t(0xff) << shift;
    }
  }

  unsigned char* flags = b.selected;
  if (whole_bucket) {  // every key whose prefix is at most τ's
    for_each_chunk(chunks, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t pix = begin; pix < end; ++pix)
        flags[pix] = keys[pix] != kTopKLeftOut && (keys[pix] & mask) <= tau ? 1 : 0;
    });
    return;
  }
  // Ties at τ per chunk, then the flags: below τ, or among the first `rank` ties.
  const int64_t take_ties = K == 0 ? 0 : rank;
  for_each_chunk(chunks, [&](int64_t i, int64_t begin, int64_t end) {
    int64_t ties = 0;
    for (int64_t pix = begin; pix < end; ++pix) ties += keys[pix] == tau ? 1 : 0;
    slots[i * kSlots + kDigits] = ties;
  });
  for (int64_t i = 0, before = 0; i < count; ++i) {  // exclusive prefix, in chunk order
    const int64_t ties = slots[i * kSlots + kDigits];
    slots[i * kSlots + kDigits] = before;
    before += ties;
  }
  for_each_chunk(chunks, [&](int64_t i, int64_t begin, int64_t end) {
    int64_t tie = slots[i * kSlots + kDigits];
    for (int64_t pix = begin; pix < end; ++pix) {
      const uint64_t k = keys[pix];
      bool take = K > 0 && k < tau;
      if (k == tau && K > 0) take = tie++ < take_ties;
      flags[pix] = take ? 1 : 0;
    }
  });
}

}  // namespace culoss::cpu
