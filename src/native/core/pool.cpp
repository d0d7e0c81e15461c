#include "core/pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define POCKETML_HAVE_GETPID 1
#endif
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#define POCKETML_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define POCKETML_PAUSE() __asm__ __volatile__("yield")
#else
#define POCKETML_PAUSE() ((void)0)
#endif

namespace pocketml {
namespace {

constexpr int kMaxThreads = 256;
// Workers spin this long after a job before sleeping: a decode step issues hundreds of small
// kernels back to back, and waking a sleeping thread costs tens of microseconds.
constexpr auto kSpin = std::chrono::microseconds(200);

int cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

class Pool {
 public:
  // Runs the job on min(threads, chunks) threads; false when the pool is busy.
  bool try_run(int64_t chunks, int threads, ChunkFn fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    const int helpers = static_cast<int>(std::min<int64_t>(threads, chunks)) - 1;
    grow(helpers);
    fn_ = fn;
    chunks_ = chunks;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    pending_.store(helpers, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      // generation in the high bits, the number of helpers taking part in the low 16
      job_.store(((job_.load(std::memory_order_relaxed) >> 16) + 1) << 16 | helpers,
                 std::memory_order_release);
      if (sleepers_) cv_.notify_all();
    }
    work();
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 4096)
        POCKETML_PAUSE();
      else
        std::this_thread::yield();
    }
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  void grow(int helpers) {
    while (static_cast<int>(workers_.size()) < helpers) {
      const int index = static_cast<int>(workers_.size());
      // the generation before the job being posted, so that the new worker takes part in it
      const uint64_t seen = job_.load(std::memory_order_relaxed) >> 16;
      workers_.emplace_back([this, index, seen] { loop(index, seen); });
    }
  }

  void work() {
    for (int64_t c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < chunks_;) {
      try {
        fn_.call(fn_.ctx, c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(chunks_, std::memory_order_relaxed);
      }
    }
  }

  void loop(int index, uint64_t seen) {
    for (;;) {
      uint64_t job = wait(seen);
      seen = job >> 16;
      if (index < static_cast<int>(job & 0xffff)) {
        work();
        pending_.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  uint64_t wait(uint64_t seen) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0;; ++i) {
      uint64_t job = job_.load(std::memory_order_acquire);
      if (job >> 16 != seen) return job;
      POCKETML_PAUSE();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > kSpin) break;
    }
    std::unique_lock<std::mutex> lock(mu_);
    ++sleepers_;
    uint64_t job;
    cv_.wait(lock, [&] { return ((job = job_.load(std::memory_order_acquire)) >> 16) != seen; });
    --sleepers_;
    return job;
  }

  std::mutex busy_;  // held by the one job running
  std::mutex mu_;
  std::condition_variable cv_;
  int sleepers_ = 0;
  std::atomic<uint64_t> job_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  int64_t chunks_ = 0;
  ChunkFn fn_{nullptr, nullptr};
  std::exception_ptr error_;
  std::vector<std::thread> workers_;  // never joined: the pool lives as long as the process
};

std::mutex g_pool_mu;
Pool* g_pool = nullptr;
#if defined(POCKETML_HAVE_GETPID)
pid_t g_pool_pid = 0;
#endif

Pool* pool() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
#if defined(POCKETML_HAVE_GETPID)
  // A forked child has none of its parent's threads: it gets a pool of its own (the parent's is
  // leaked, its mutexes may be held by threads that do not exist here).
  if (g_pool && g_pool_pid != getpid()) g_pool = nullptr;
  if (!g_pool) g_pool_pid = getpid();
#endif
  if (!g_pool) g_pool = new Pool();
  return g_pool;
}

}  // namespace

int default_threads() {
  static const int n = [] {
    const char* env = std::getenv("POCKETML_THREADS");
    if (env && *env) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (end && *end == '\0' && v >= 1) return static_cast<int>(std::min<long>(v, kMaxThreads));
    }
    return std::min(cpus(), kMaxThreads);
  }();
  return n;
}

void run_chunks(int64_t chunks, int threads, ChunkFn fn) {
  if (chunks <= 0) return;
  if (threads <= 0) threads = default_threads();
  threads = std::min(threads, kMaxThreads);
  if (threads > 1 && chunks > 1 && pool()->try_run(chunks, threads, fn)) return;
  for (int64_t c = 0; c < chunks; ++c) fn.call(fn.ctx, c);
}

}  // namespace pocketml
