// Stable LSD radix sort of (64-bit key, element) pairs, and the key that orders Lovász errors
// (the CPU backend's sort; header-only so that tests/internal checks it against std::sort).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace culoss::cpu {

struct KeyedElement {
  uint64_t key;
  int64_t element;
};

// Ascending keys order errors descending; a NaN error sorts first, and −0 and +0 tie.
inline uint64_t descending_key(double e) {
  if (std::isnan(e)) return 0;  // no other error maps to 0 (its bits would be a NaN's)
  if (e == 0.0) e = 0.0;
  uint64_t u;
  std::memcpy(&u, &e, sizeof(u));
  const uint64_t ascending = (u >> 63) ? ~u : (u | (uint64_t(1) << 63));
  return ~ascending;
}

// Sorts v by key, ties keeping their order (stable); `scratch` is resized to v's size. Bytes in
// which every key agrees are skipped; short inputs use a comparison sort on (key, position).
inline void radix_sort(std::vector<KeyedElement>& v, std::vector<KeyedElement>& scratch) {
  const size_t n = v.size();
  if (n < 64) {
    std::stable_sort(v.begin(), v.end(),
                     [](const KeyedElement& a, const KeyedElement& b) { return a.key < b.key; });
    return;
  }
  constexpr int kBytes = 8;
  std::vector<size_t> count(kBytes * 256, 0);
  for (const KeyedElement& it : v)
    for (int b = 0; b < kBytes; ++b) ++count[b * 256 + ((it.key >> (8 * b)) & 0xff)];
  scratch.resize(n);
  KeyedElement* src = v.data();
  KeyedElement* dst = scratch.data();
  for (int b = 0; b < kBytes; ++b) {
    size_t* c = count.data() + b * 256;
    if (c[(src[0].key >> (8 * b)) & 0xff] == n) continue;  // one value in this byte
    size_t offset = 0;
    for (int d = 0; d < 256; ++d) {
      const size_t k = c[d];
      c[d] = offset;
      offset += k;
    }
    for (size_t i = 0; i < n; ++i) dst[c[(src[i].key >> (8 * b)) & 0xff]++] = src[i];
    std::swap(src, dst);
  }
  if (src != v.data()) std::copy(src, src + n, v.data());
}

}  // namespace culoss::cpu
