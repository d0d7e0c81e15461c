// One persistent thread pool for the whole process: workers are created once (lazily, and again
// in a forked child) and pull chunks of a job from an atomic counter, the calling thread too.
// A job that arrives while the pool is busy (another Python thread, or a nested call) runs on
// the caller alone, so callers never wait on each other and never deadlock.
#pragma once

#include <algorithm>
#include <cstdint>

namespace pocketml {

// Threads a call uses by default: POCKETML_THREADS when set (>= 1), else the CPUs this process
// may run on.
int default_threads();

// A borrowed callable fn(chunk) without std::function's allocation.
struct ChunkFn {
  void* ctx;
  void (*call)(void* ctx, int64_t chunk);
};

// Runs fn(c) for every c in [0, chunks) on up to `threads` threads (0: default_threads()).
// Rethrows the first exception a chunk threw (the remaining chunks are skipped).
void run_chunks(int64_t chunks, int threads, ChunkFn fn);

// Calls fn(begin, end) over [0, n) in chunks of `grain` items (the last one shorter).
template <class F>
void parallel_for(int64_t n, int64_t grain, int threads, F&& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  struct Ctx {
    F* fn;
    int64_t n, grain;
  } ctx{&fn, n, grain};
  run_chunks(chunks, threads, ChunkFn{&ctx, [](void* p, int64_t c) {
                                        Ctx* x = static_cast<Ctx*>(p);
                                        const int64_t b = c * x->grain;
                                        (*x->fn)(b, std::min(x->n, b + x->grain));
                                      }});
}

}  // namespace pocketml
