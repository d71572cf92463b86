// The CPU backend's thread pool (thread_pool.hpp).
//
// Workers are detached std::threads that wait for jobs; a job is one parallel_for. The calling
// thread works on its own job too, so a call always progresses, also when every worker is busy
// with another caller's job.
//
// A call runs two or three passes back to back, each a job of a fraction of a millisecond, and a
// thread put to sleep on a condition variable takes tens of microseconds to wake (more in a
// virtual machine). So a worker that finishes a job, and a caller waiting for its workers, first
// watch for a while (kSpinTime, pausing between looks) before they sleep: the next pass of the
// same call finds its workers awake. After that they sleep, and an idle library takes no CPU.
// With more threads than CPUs nobody watches (a watcher would take the CPU from a worker).
// Waking a sleeping worker takes 40-60 µs in the benchmarks' VM (250 µs at the 90th
// percentile), and a 2-thread call on 8x4x128² logits then takes about 272 µs instead of 200
// (benchmarks/python/call_overhead.py):
// culoss_set_num_threads wakes them ahead of time (Pool::ready), so a caller that sets the
// count just before a call (the Python modules do, with their argument handling to follow)
// finds them awake or waking.
//
// The pool is never destroyed (no destruction-order hazards at exit; the library is linked
// -z nodelete so that dlclose never unmaps code a worker waits in), and a forked child starts a
// fresh one (its parent's workers do not exist there).
#include "cpu/thread_pool.hpp"

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.hpp"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace culoss::cpu {
namespace {

// ---- the thread count --------------------------------------------------------------------

std::atomic<int> g_requested{0};  // culoss_set_num_threads; 0: the default

// CULOSS_NUM_THREADS as a count in [1, kMaxThreads], or 0 when unset or anything else.
int env_threads() {
  const char* s = std::getenv("CULOSS_NUM_THREADS");
  if (!s || !*s) return 0;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v < 1 || v > kMaxThreads) return 0;
  return static_cast<int>(v);
}

// The CPUs this process may run on (its affinity mask), else the hardware's.
int hardware_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    return std::min(CPU_COUNT(&set), kMaxThreads);
#endif
  const unsigned h = std::thread::hardware_concurrency();
  return h == 0 ? 1 : static_cast<int>(std::min<unsigned>(h, kMaxThreads));
}

int default_threads() {
  static const int value = [] {  // read once
    const int env = env_threads();
    return env > 0 ? env : hardware_threads();
  }();
  return value;
}

// ---- the pool ----------------------------------------------------------------------------

// How long a worker watches for the next job, and a caller for its workers to finish, before
// sleeping (see the top of the file).
constexpr std::chrono::microseconds kSpinTime{50};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// How long a worker woken by Pool::ready watches: longer, since the call it was woken for
// comes after the caller's own preparations.
constexpr std::chrono::microseconds kReadySpinTime{250};

// Watches `done` until it holds or `time` has passed; returns whether it holds.
template <class Done>
bool spin_until(Done&& done, std::chrono::microseconds time = kSpinTime) {
  const auto until = std::chrono::steady_clock::now() + time;
  for (int i = 0;; ++i) {
    if (done()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return done();
  }
}

struct Job {
  const std::function<void(int64_t)>* task = nullptr;
  int64_t count = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> failed{INT64_MAX};  // lowest failing index
  std::mutex error_mutex;
  std::exception_ptr error;
  int open_slots = 0;          // workers that may still join (Pool::m_)
  std::atomic<int> active{0};  // workers working on it (changed under Pool::m_)
  Job* queued_next = nullptr;  // the pool's queue (Pool::m_)

  // Claims and runs tasks until none is left. Never throws.
  void work() noexcept {
    for (int64_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      if (i > failed.load(std::memory_order_relaxed)) continue;
      try {
        (*task)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (i < failed.load()) {
          failed.store(i);
          error = std::current_exception();
        }
      }
    }
  }
};

class Pool {
 public:
  void run(int64_t count, int threads, const std::function<void(int64_t)>& task) {
    Job job;
    job.task = &task;
    job.count = count;
    const int helpers = static_cast<int>(std::min<int64_t>(threads, count)) - 1;
    job.open_slots = helpers;
    {
      std::lock_guard<std::mutex> lock(m_);
      grow(helpers);
      enqueue(&job);
      queued_.store(true, std::memory_order_relaxed);
    }
    for (int i = 0; i < helpers; ++i) work_cv_.notify_one();  // idle workers, one per slot
    job.work();
    {
      std::lock_guard<std::mutex> lock(m_);
      dequeue(&job);  // from here on no worker joins, and `active` only falls
      queued_.store(head_ != nullptr, std::memory_order_relaxed);
    }
    const auto finished = [&] { return job.active.load(std::memory_order_acquire) == 0; };
    if (!(watch_.load(std::memory_order_relaxed) ? spin_until(finished) : finished())) {
      std::unique_lock<std::mutex> lock(m_);
      done_cv_.wait(lock, [&] { return job.active.load() == 0; });
    }
    if (job.error) std::rethrow_exception(job.error);
  }

  // Starts workers up to threads - 1, and wakes sleeping ones to watch for a job a while: the
  // next run finds them awake. Never throws (a thread that cannot be started is left out).
  void ready(int threads) noexcept {
    std::lock_guard<std::mutex> lock(m_);
    grow(threads - 1);
    if (sleeping_ == 0 || !watch_.load(std::memory_order_relaxed)) return;
    ++rouse_;
    work_cv_.notify_all();
  }

 private:
  // Starts workers until there are `wanted` (under m_). A thread that cannot be started leaves
  // the pool smaller: callers do the work themselves.
  void grow(int wanted) {
    while (workers_ < wanted) {
      try {
        std::thread([this] { worker(); }).detach();
      } catch (...) {
        return;
      }
      ++workers_;
      // More threads than CPUs: a watching thread would take the CPU from one that works.
      static const int cpus = hardware_threads();
      watch_.store(workers_ < cpus, std::memory_order_relaxed);
    }
  }

  void worker() noexcept {
    std::unique_lock<std::mutex> lock(m_);
    bool roused = false;  // woken by ready(), not by a job
    for (;;) {
      if (!head_ &&
          watch_.load(std::memory_order_relaxed)) {  // watch for a job a while before sleeping
        lock.unlock();
        spin_until([&] { return queued_.load(std::memory_order_relaxed); },
                   roused ? kReadySpinTime : kSpinTime);
        lock.lock();
      }
      const uint64_t rouse = rouse_;
      ++sleeping_;
      work_cv_.wait(lock, [&] { return head_ != nullptr || rouse_ != rouse; });
      --sleeping_;
      roused = !head_;
      if (roused) continue;  // woken by ready(): watch for the job it announces
      Job* job = head_;
      if (--job->open_slots <= 0) dequeue(job);
      queued_.store(head_ != nullptr, std::memory_order_relaxed);
      job->active.fetch_add(1);
      lock.unlock();
      job->work();
      lock.lock();
      // the job may be gone once `active` is 0 (its caller does not wait for the lock then)
      if (job->active.fetch_sub(1, std::memory_order_acq_rel) == 1) done_cv_.notify_all();
    }
  }

  // The queue of jobs that workers may still join, oldest first: a list through the jobs
  // themselves, so that a call allocates nothing (under m_).
  void enqueue(Job* job) {
    Job** end = &head_;
    while (*end) end = &(*end)->queued_next;
    *end = job;
  }
  void dequeue(Job* job) {
    for (Job** at = &head_; *at; at = &(*at)->queued_next)
      if (*at == job) {
        *at = job->queued_next;
        job->queued_next = nullptr;
        return;
      }
  }

  std::mutex m_;
  std::condition_variable work_cv_, done_cv_;
  Job* head_ = nullptr;
  std::atomic<bool> queued_{false};  // head_ != nullptr, for watching without m_
  std::atomic<bool> watch_{true};    // whether to watch before sleeping
  int workers_ = 0;
  int sleeping_ = 0;    // workers waiting on work_cv_ (m_)
  uint64_t rouse_ = 0;  // bumped by ready() (m_)
};

std::atomic<Pool*> g_pool{nullptr};

#if defined(__linux__)
// After fork() only the forking thread exists: the child leaves its copy of the parent's pool
// (whose mutex may be held by a worker that is gone) and starts a new one on first use.
void forget_pool_in_child() { g_pool.store(nullptr); }
#endif

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return *p;
#if defined(__linux__)
  static const int registered = pthread_atfork(nullptr, nullptr, forget_pool_in_child);
  (void)registered;
#endif
  Pool* fresh = new Pool;
  if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread was first
  return *p;
}

}  // namespace

void set_num_threads(int n) {
  if (n < 0 || n > kMaxThreads)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, "number of threads is ", n, "; expected 1 to ", kMaxThreads,
         ", or 0 for the default (", default_threads(), " here)");
  g_requested.store(n);
  const int threads = num_threads();
  if (threads > 1) pool().ready(threads);
}

int num_threads() {
  const int n = g_requested.load(std::memory_order_relaxed);
  return n > 0 ? n : default_threads();
}

void parallel_for(int64_t count, const std::function<void(int64_t)>& task) {
  if (count <= 0) return;
  const int threads = num_threads();
  if (count == 1 || threads == 1) {  // inline; the first failure is the lowest index
    for (int64_t i = 0; i < count; ++i) task(i);
    return;
  }
  pool().run(count, threads, task);
}

}  // namespace culoss::cpu
