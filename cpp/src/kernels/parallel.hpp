// Internal: a parallel loop over independent work items with OpenMP when it is available.
// Exceptions thrown by the body are caught per thread and the first one rethrown after the
// loop (an exception escaping an OpenMP region would terminate the process).
#pragma once
#include <cstddef>
#include <exception>
#include <mutex>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace smic::detail {

inline int resolve_threads(int n_threads) {
#if defined(_OPENMP)
  return n_threads > 0 ? n_threads : omp_get_max_threads();
#else
  (void)n_threads;
  return 1;
#endif
}

template <class Body>
void parallel_for(std::size_t n, int n_threads, Body&& body) {
  const int threads = resolve_threads(n_threads);
  if (threads <= 1 || n <= 1) {
    for (std::size_t i = 0; i < n; ++i) body(i);
    return;
  }
  std::exception_ptr first_error;
  std::mutex error_mutex;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (long long i = 0; i < static_cast<long long>(n); ++i) {
    try {
      body(static_cast<std::size_t>(i));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace smic::detail
