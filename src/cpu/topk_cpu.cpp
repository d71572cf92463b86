// TOPK_CE's selection on the CPU. Each pixel's key is computed in chunks on the thread pool
// (64 bits from the generic passes' double losses, 32 from the fast path's float losses, which
// order the same); the K-th smallest key τ is found by a radix select, one pass of 256-bin
// digit histograms per byte of the key, counted per chunk and added in chunk order (the top
// byte's right after the chunk's keys; the select stops at the digit whose bucket holds just
// the keys still to take); then every key below τ is selected, and of the keys equal to τ
// the lowest pixels, by a count of ties per chunk added in chunk order. All sums are of
// integers and every flag is written by one chunk: any number of threads gives the same
// selection.
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

namespace {

// Adds to h[0..255] how many keys of [begin, end) have each digit (key >> shift) & 0xff, of the
// keys whose prefix (key & mask) is τ. Four counters per digit, one per key modulo 4, and no
// branch: a run of keys with one digit does not wait on its own increments.
template <class Key>
void count_digits(const Key* keys, int64_t begin, int64_t end, int shift, Key mask, Key tau,
                  int64_t* h) {
  uint32_t part[4][kDigits] = {};  // a chunk holds fewer than 2^32 pixels
  int64_t pix = begin;
  for (; pix + 4 <= end; pix += 4)
    for (int j = 0; j < 4; ++j) {
      const Key k = keys[pix + j];
      part[j][(k >> shift) & 0xff] += (k & mask) == tau ? 1u : 0u;
    }
  for (; pix < end; ++pix) part[0][(keys[pix] >> shift) & 0xff] += (keys[pix] & mask) == tau;
  for (int64_t digit = 0; digit < kDigits; ++digit)
    h[digit] =
        static_cast<int64_t>(part[0][digit]) + part[1][digit] + part[2][digit] + part[3][digit];
}

// The flags of the K first pixels in (key, pixel) order, from keys of Key's width (kLeftOut
// where a pixel is not counted). Each chunk's histogram of the top digit is already in its
// slots (counted right after its keys, while they are in cache).
template <class Key>
void select_by_keys(const Partition& chunks, const Key* keys, int64_t* slots, int64_t K,
                    unsigned char* flags) {
  constexpr Key kLeftOut = ~Key(0);
  constexpr int kTopShift = 8 * static_cast<int>(sizeof(Key)) - 8;
  const int64_t count = chunks.count();
  // τ = the K-th smallest key, digit by digit from the top; `rank` ends as the number of pixels
  // with key τ that are selected. Once the digit's bucket holds exactly the `rank` keys still
  // to take, every key with that prefix is selected and the lower digits cannot change the
  // selection: τ stays a prefix (`mask` covers its digits) and nothing is a tie.
  Key tau = 0, mask = 0;
  int64_t rank = K;
  bool whole_bucket = false;
  if (K > 0) {
    for (int shift = kTopShift; shift >= 0 && !whole_bucket; shift -= 8) {
      if (shift != kTopShift)
        for_each_chunk(chunks, [&](int64_t i, int64_t begin, int64_t end) {
          count_digits<Key>(keys, begin, end, shift, mask, tau, slots + i * kSlots);
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
      tau |= static_cast<Key>(static_cast<Key>(digit) << shift);
      mask |= static_cast<Key>(Key(0xff) << shift);
    }
  }

  if (whole_bucket) {  // every key whose prefix is at most τ's
    for_each_chunk(chunks, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t pix = begin; pix < end; ++pix)
        flags[pix] = keys[pix] != kLeftOut && (keys[pix] & mask) <= tau ? 1 : 0;
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
      const Key k = keys[pix];
      bool take = K > 0 && k < tau;
      if (k == tau && K > 0) take = tie++ < take_ties;
      flags[pix] = take ? 1 : 0;
    }
  });
}

}  // namespace

void select_top_k(const Call& call, const Plan& plan, const Buffers& b, const TopKScratch& s,
                  const FastCall* fast) {
  const Layout& L = call.layout;
  const TermSpec& ts = plan.prog.term[plan.top_k];
  const Partition chunks = key_chunks(L);
  const int64_t count = chunks.count();
  int64_t* slots = s.counts;
  const auto counted_pixels = [&] {
    int64_t M = 0;
    for (int64_t i = 0; i < count; ++i) M += slots[i * kSlots + kDigits];
    return M;
  };

  if (fast) {  // 32-bit keys of the float losses
    uint32_t* keys = reinterpret_cast<uint32_t*>(s.keys);
    for_each_chunk(chunks, [&](int64_t i, int64_t begin, int64_t end) {
      int64_t* h = slots + i * kSlots;
      h[kDigits] = fast_topk_keys_chunk(*fast, begin, end, keys);
      count_digits<uint32_t>(keys, begin, end, 24, 0, 0, h);
    });
    const int64_t K = topk_count(ts.top_fraction, counted_pixels());
    return select_by_keys<uint32_t>(chunks, keys, slots, K, b.selected);
  }
  // The generic losses in double: 64-bit keys.
  const ElementArgs a{L, call.target_view(), call.pixel_weight_data()};
  const double* cw = ts.class_weight_offset >= 0 ? b.weights + ts.class_weight_offset : nullptr;
  uint64_t* keys = s.keys;
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
      count_digits<uint64_t>(keys, begin, end, 56, 0, 0, slots + i * kSlots);
    });
  });
  const int64_t K = topk_count(ts.top_fraction, counted_pixels());
  select_by_keys<uint64_t>(chunks, keys, slots, K, b.selected);
}

}  // namespace culoss::cpu
