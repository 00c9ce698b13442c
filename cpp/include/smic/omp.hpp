// Batch orthogonal matching pursuit (Rubinstein, Zibulevsky & Elad 2008): the Gram matrix
// G = D D^T is computed once, each signal's correlations D x come from one blocked product
// per block of signals (a row kernel, GEMV-like, for a block of at most 5), and the support
// grows with a progressive Cholesky factorisation of G restricted to it, so no residual vector
// is ever formed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>


namespace smic {

class PackedB;  // atoms packed for the product kernel (cpp/src/kernels/gemm.hpp)

/// Throw InvalidArgument naming `what` unless all `n` values are finite.
void require_finite(const float* values, std::size_t n, const char* what);

/// One signal's pursuit as recorded by OmpCoder::pursue_paths. With progressive Cholesky, the
/// coefficients computed after step t are the least-squares fit of the signal on the first t
/// atoms, so the path holds the OMP solution of every sparsity up to n_found.
struct OmpPath {
  std::size_t n_found = 0;             // atoms selected (<= n_nonzero; fewer on an early stop)
  std::size_t stride = 0;              // row stride of `gamma` (= n_nonzero)
  const std::int32_t* atoms = nullptr; // n_found atom indices, in order of selection
  const double* alpha0 = nullptr;      // <atom, x> of each selected atom (the float products)
  const double* gamma = nullptr;       // row t < n_found: coefficients on atoms[0..t], t + 1 values
  /// The signal's float products with all K atoms (the first step's correlations), when
  /// pursue_paths was asked for them; nullptr otherwise.
  const float* correlations = nullptr;
};

/// Called with (signal index, its path); the path's buffers are valid until it returns.
using OmpPathVisitor = std::function<void(std::size_t, const OmpPath&)>;

/// A dictionary prepared for sparse coding: atoms packed for the product kernel, Gram matrix
/// precomputed. Build once, code many batches (in any number of threads).
class OmpCoder {
 public:
  /// `atoms`: n_atoms x dim, row-major, rows of unit norm (checked to 1e-3).
  OmpCoder(const float* atoms, std::size_t n_atoms, std::size_t dim, int n_threads = 0);
  /// The same, with the correlations D x computed from a factored form of the atoms:
  /// row_scale ⊙ (R x), where atom j is close to row_scale[j] * R[j] (see PackedB). Atoms
  /// read from a file are stored so: R holds their float16 values or int8 levels. The Gram
  /// matrix and the unit-norm check use `atoms`.
  OmpCoder(const float* atoms, const float* rows, const float* row_scale, std::size_t n_atoms,
           std::size_t dim, int n_threads = 0);

  std::size_t n_atoms() const { return n_atoms_; }
  std::size_t dim() const { return dim_; }
  /// The Gram matrix D D^T, row j at gram().data() + j * gram_stride(): the stride pads each
  /// row to an odd number of 64-byte lines, so the chosen atoms' rows a pursuit reads together
  /// do not all fall in the same L1 cache sets (at K = 1024, rows 4 KB apart did: every read
  /// of them missed L1). Padding entries are 0.
  const std::vector<float>& gram() const { return gram_; }
  std::size_t gram_stride() const { return gram_stride_; }

  /// Code `n` signals (n x dim, row-major). Writes n x n_nonzero atom indices and coefficients;
  /// a slot left unused by an early stop holds index -1 and coefficient 0. With tol >= 0, a
  /// signal stops as soon as its squared residual norm is <= tol (scikit-learn's `tol`).
  /// A signal also stops when the best remaining correlation is negligible or the next atom
  /// is linearly dependent on the chosen ones.
  void encode(const float* signals, std::size_t n, std::size_t n_nonzero, double tol,
              std::int32_t* indices, float* coefs, int n_threads = 0) const;

  /// Run the pursuit of `encode` (no tol) on n signals and hand each signal's recorded path
  /// to visit(i, path) instead of writing coefficients. Signals are coded on n_threads threads
  /// in blocks, so `visit` may run on several threads at once (for distinct i); an exception
  /// it throws is rethrown here after the loop. Same checks and exceptions as encode. With
  /// `all_correlations`, every path carries the signal's products with all K atoms (a single
  /// signal then takes the full product, never the atom screen; the path is the same).
  void pursue_paths(const float* signals, std::size_t n, std::size_t n_nonzero,
                    const OmpPathVisitor& visit, int n_threads = 0,
                    bool all_correlations = false) const;

 /// Internal: what a one-item pursuit screens the atoms with (see omp.cpp).
  struct Screen;

 private:
  struct ScreenSlot;
  void check_encode_args(const float* signals, std::size_t n, std::size_t n_nonzero,
                         double tol) const;
  /// The atom screen for one-item pursuits, or nullptr when they take the full product.
  const Screen* screen_for_one_item() const;

  std::size_t n_atoms_, dim_;
  std::shared_ptr<const PackedB> packed_;  // the kernels' layout (private header kernels/gemm.hpp)
  std::vector<float> gram_;
  std::size_t gram_stride_ = 0;
  std::vector<float> gram_diag_;  // G_jj
  std::shared_ptr<ScreenSlot> screen_slot_;  // shared by copies: built once, then immutable
};

/// How a one-item pursuit (encode or pursue_paths of one signal) finds its atoms; the codes
/// are the same either way. "auto": over atoms stored as float16 (as read from a file) with
/// K x d >= 393,216 (3 x 2^17), when the CPU has AVX-512 VNNI and the AVX-512 kernels are in
/// use, it screens them: an int8 product gives every atom an approximate correlation and a
/// proven error bound, and only the atoms that can still be the largest get their exact
/// product. "on": always screen (plain C++ where VNNI is missing: for tests). "off": compute
/// every correlation. Returns false for another name. Not thread-safe; for tests and
/// benchmarks.
bool set_atom_screening(const char* mode);
/// True when a one-item pursuit over a large float16 dictionary screens its atoms now.
bool atom_screening_enabled();

/// The argument checks of every OMP coder (CPU and CUDA): 1 <= n_nonzero <= min(K, d) and tol
/// not NaN; InvalidArgument naming the bound otherwise.
void check_sparsity(std::size_t n_nonzero, std::size_t n_atoms, std::size_t dim, double tol);

/// One-shot batch OMP: prepares an OmpCoder for `atoms` and codes `signals` with it.
void batch_omp(const float* signals, std::size_t n, const float* atoms, std::size_t n_atoms,
               std::size_t dim, std::size_t n_nonzero, double tol, std::int32_t* indices,
               float* coefs, int n_threads = 0);

}  // namespace smic
