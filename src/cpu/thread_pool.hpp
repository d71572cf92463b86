// Threads of the CPU backend: one process-wide pool of std::threads, the thread-count setting
// (culoss_set_num_threads, CULOSS_NUM_THREADS) and the one partition of work into chunks that
// every CPU pass uses.
//
// Determinism: the chunks depend on the problem's size alone, never on the number of threads.
// Each chunk writes its own outputs or its own partial sums, and the caller combines partials in
// chunk order, so every thread count gives bitwise the same result.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

namespace culoss::cpu {

// Largest thread count culoss_set_num_threads accepts (and the default never exceeds).
constexpr int kMaxThreads = 1024;

// n >= 1 threads, or 0 for the default (CULOSS_NUM_THREADS, else the CPUs this process may use).
// Throws culoss::Error for n < 0 or n > kMaxThreads.
void set_num_threads(int n);
// The count the passes use now (>= 1).
int num_threads();

// [0, total) cut into chunks of `grain` items, the last one shorter; no chunk when total is 0.
struct Partition {
  int64_t total, grain;
  Partition(int64_t total_, int64_t grain_) : total(total_), grain(std::max<int64_t>(grain_, 1)) {}
  int64_t count() const { return total > 0 ? (total - 1) / grain + 1 : 0; }
  int64_t begin(int64_t i) const { return i * grain; }
  int64_t end(int64_t i) const { return std::min(total, (i + 1) * grain); }
};

// Chunk sizes: a chunk holds at least kChunkElements elements (pixels x classes) and at least
// kMinChunkPixels pixels, which keeps per-chunk partial rows of statistics below 1/1024 of the
// pixels they stand for.
constexpr int64_t kChunkElements = int64_t(1) << 14;
constexpr int64_t kMinChunkPixels = int64_t(1) << 10;
inline int64_t chunk_pixels(int64_t C) {
  return std::max(kMinChunkPixels, kChunkElements / std::max<int64_t>(C, 1));
}

// Runs task(i) for every i in [0, count) on up to num_threads() threads, the calling thread
// being one of them, and returns when all have run. No exception leaves a worker: the one
// thrown by the lowest failing index (so the error does not depend on scheduling) is rethrown
// here once every task has finished; tasks above a failed index may be skipped.
void parallel_for(int64_t count, const std::function<void(int64_t)>& task);

// body(chunk, begin, end) for every chunk of `part`, in parallel (parallel_for).
template <class Body>
void for_each_chunk(const Partition& part, Body&& body) {
  parallel_for(part.count(), [&](int64_t i) { body(i, part.begin(i), part.end(i)); });
}

}  // namespace culoss::cpu
