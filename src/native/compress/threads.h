// A few threads over a shared atomic task counter; the first exception is rethrown by the caller.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace pocketml {

// Calls fn(i) for i in [0, n) on up to `threads` threads (the caller's included). Tasks are
// taken in order from an atomic counter, so fn must not depend on which thread runs it.
template <class F>
void parallel_for(int64_t n, int threads, F&& fn) {
  int nt = static_cast<int>(std::min<int64_t>(std::max(threads, 1), n));
  if (nt <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&] {
    try {
      for (int64_t i; (i = next.fetch_add(1)) < n;) fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
      next.store(n);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(nt - 1);
  for (int t = 1; t < nt; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// Splits [0, n) into `parts` contiguous chunks; chunk c is [bounds(c), bounds(c + 1)).
inline int64_t chunk_start(int64_t n, int64_t parts, int64_t c) { return n * c / parts; }

}  // namespace pocketml
