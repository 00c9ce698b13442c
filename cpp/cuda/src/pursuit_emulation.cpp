// The warp code of the GPU kernel run on the host: 32 fibers per warp, switched round-robin at
// every shuffle and sync, so the exact source of pursuit_warp.hpp is exercised (and compared
// with the CPU core by tests/test_cuda.py) on machines without a GPU. Cooperative fibers on
// one thread: no data races by construction, and a deterministic lane order.
#include "pursuit_emulation.hpp"

#include <ucontext.h>

#include <array>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "pursuit_warp.hpp"

namespace smic::cuda::detail {
namespace {

constexpr std::size_t kFiberStack = 256 * 1024;

struct Job {
  const float* signals;
  float* corr;
  const float* gram;
  std::size_t m, n_atoms, dim, n_nonzero;
  double tol;
  std::int32_t* indices;
  float* coefs;
};

// Round-robin scheduler of the 32 lanes. Lane i yields to lane i + 1 at every barrier, so when
// a lane passes barrier k, every other lane has reached barrier k too: a warp-wide barrier.
class Warp32 {
 public:
  explicit Warp32(const Job& job) : job_(job), stacks_(kWarpSize) {
    const std::size_t s = job.n_nonzero;
    chol_.assign(s * (s + 1) / 2, 0.0);
    gamma_f_.assign(s, 0.0f);
    support_.assign(s, 0);
  }

  void run() {
    active_ = this;
    for (int lane = 0; lane < kWarpSize; ++lane) prepare(lane);
    if (swapcontext(&main_, &lanes_[0]) != 0) throw std::runtime_error("swapcontext failed");
    active_ = nullptr;
    if (!error_.empty()) throw std::runtime_error(error_);
  }

  // Called by lane `lane` at every shuffle half and sync; `site` is the source line of the
  // call. All lanes must reach the same sites in the same order: each lane is checked against
  // the one before it (lane 0 only for its count: lane 31 is still one barrier behind).
  void barrier(int lane, int site) {
    ++count_[lane];
    site_[lane] = site;
    const int prev = (lane + kWarpSize - 1) % kWarpSize;
    const bool same_place = lane == 0 ? count_[prev] == count_[lane] - 1
                                      : count_[prev] == count_[lane] && site_[prev] == site;
    if (done_[prev] || !same_place) fail(lane, "a shuffle or sync");
    swapcontext(&lanes_[lane], &lanes_[(lane + 1) % kWarpSize]);
  }

  std::array<std::uint64_t, kWarpSize> slots{};

 private:
  // A fresh context for `lane` that starts in entry(lane) on its own stack.
  void prepare(int lane) {
    stacks_[lane].resize(kFiberStack);
    if (getcontext(&lanes_[lane]) != 0) throw std::runtime_error("getcontext failed");
    lanes_[lane].uc_stack.ss_sp = stacks_[lane].data();
    lanes_[lane].uc_stack.ss_size = stacks_[lane].size();
    lanes_[lane].uc_link = nullptr;
    // void (*)(void) is the type makecontext wants; GCC exempts it from -Wcast-function-type.
    makecontext(&lanes_[lane], reinterpret_cast<void (*)(void)>(&Warp32::entry), 1, lane);
  }

  static void entry(int lane) {
    Warp32& self = *active_;
    self.body(lane);
    self.finish(lane);
  }

  void body(int lane);

  void finish(int lane) {
    done_[lane] = true;
    const int prev = (lane + kWarpSize - 1) % kWarpSize;
    const bool prev_ok = lane == 0 ? (!done_[prev] && count_[prev] == count_[lane])
                                   : (done_[prev] && count_[prev] == count_[lane]);
    if (!prev_ok) fail(lane, "the end of the kernel");
    if (lane == kWarpSize - 1) {
      setcontext(&main_);
    } else {
      setcontext(&lanes_[lane + 1]);
    }
  }

  [[noreturn]] void fail(int lane, const char* where) {
    error_ = "warp lanes diverged at " + std::string(where) + " (lane " + std::to_string(lane) +
             ", barrier " + std::to_string(count_[lane]) + ", line " +
             std::to_string(site_[lane]) + " of pursuit_warp.hpp): full-mask intrinsics would "
             "be undefined behaviour on a GPU";
    setcontext(&main_);
    __builtin_unreachable();
  }

  static thread_local Warp32* active_;
  Job job_;
  ucontext_t main_{};
  std::array<ucontext_t, kWarpSize> lanes_{};
  std::vector<std::vector<char>> stacks_;
  std::array<long, kWarpSize> count_{};
  std::array<int, kWarpSize> site_{};
  std::array<bool, kWarpSize> done_{};
  std::string error_;
  std::vector<double> chol_;
  std::vector<float> gamma_f_;
  std::vector<int> support_;
};

thread_local Warp32* Warp32::active_ = nullptr;

// The host stand-in for DeviceWarp: shuffles go through the scheduler's slots. Each call
// records its source line (GCC/Clang __builtin_LINE() as a default argument is evaluated at
// the call site) so that lanes at different shuffles are caught, not paired.
struct HostWarp {
  Warp32* warp;
  int lane_;
  int lane() const { return lane_; }
  template <class T>
  T exchange(T v, int src, int site) {
    static_assert(sizeof(T) <= sizeof(std::uint64_t), "slot size");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    warp->slots[lane_] = bits;
    warp->barrier(lane_, site);  // all lanes have written
    T out;
    std::memcpy(&out, &warp->slots[src], sizeof out);
    warp->barrier(lane_, -site);  // all lanes have read
    return out;
  }
  double shfl(double v, int src, int site = __builtin_LINE()) { return exchange(v, src, site); }
  double shfl_xor(double v, int mask, int site = __builtin_LINE()) {
    return exchange(v, lane_ ^ mask, site);
  }
  float shfl_xor(float v, int mask, int site = __builtin_LINE()) {
    return exchange(v, lane_ ^ mask, site);
  }
  int shfl_xor(int v, int mask, int site = __builtin_LINE()) {
    return exchange(v, lane_ ^ mask, site);
  }
  void sync(int site = __builtin_LINE()) { warp->barrier(lane_, site); }
};

void Warp32::body(int lane) {
  HostWarp warp{this, lane};
  const int s = static_cast<int>(job_.n_nonzero);
  for (std::size_t row = 0; row < job_.m; ++row)
    pursue_signal(warp, job_.signals + row * job_.dim, job_.corr + row * job_.n_atoms, job_.gram,
                  static_cast<int>(job_.n_atoms), static_cast<int>(job_.dim), s, job_.tol,
                  chol_.data(), gamma_f_.data(), support_.data(), job_.indices + row * s,
                  job_.coefs + row * s);
}

}  // namespace

void emulate_pursuit(const float* signals, float* corr, const float* gram, std::size_t m,
                     std::size_t n_atoms, std::size_t dim, std::size_t n_nonzero, double tol,
                     std::int32_t* indices, float* coefs) {
  if (m == 0) return;
  Warp32 warp(Job{signals, corr, gram, m, n_atoms, dim, n_nonzero, tol, indices, coefs});
  warp.run();
}

}  // namespace smic::cuda::detail
