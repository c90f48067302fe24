// One pass over a layer's W for c pairs of one task (evoplastic.families.paper.cpu_step).
//
// For each pair m and row r of W_{t-1} (stored as S: float, double, bfloat16 or float16 bits):
//   row = keep_m · W_{t-1}[r] - Σ_k L_k[r] R_k            (the pending update of the previous step, rank 0-3)
//   out[r] = row (rounded to S),  z_r = row · v,  u += a_r · row
// where a_r is given (ACT_GIVEN), softmax(z)_r (online, against a running maximum) or σ(z_r), which is
// also written to y[r] when y is given (the layer's output, computed once).
// Arithmetic in A: float for float/16-bit storage, double for double. The row is formed once in a
// small buffer (it stays in L1), so W_{t-1} is read once and W_t written once per step. out may be
// the weights themselves (in place): row r of W_t depends only on row r of W_{t-1}, and each element
// is loaded before it is stored, so w and out are not declared __restrict.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#define EVOPLASTIC_NATIVE_F16 1  // VCVTPH2PS / VCVTPS2PH on 16 values
#else
#define EVOPLASTIC_NATIVE_F16 0
#endif
#if defined(__AVX512BF16__) && defined(__AVX512F__)
#define EVOPLASTIC_NATIVE_BF16 1  // VCVTNEPS2BF16 on 16 values
#else
#define EVOPLASTIC_NATIVE_BF16 0
#endif

namespace {

enum { ACT_NONE = 0, ACT_GIVEN = 1, ACT_SOFTMAX = 2, SOFTPLUS = 3, RELU = 4, LEAKY_RELU = 5, TANH = 6,
       SIGMOID = 7, HARDTANH = 8, HEAVISIDE = 9 };
enum { F32 = 0, F64 = 1, BF16 = 2, F16 = 3 };

inline float load(const float* p, int64_t j) { return p[j]; }
inline double load(const double* p, int64_t j) { return p[j]; }
inline float load(const uint16_t* p, int64_t j) {  // bfloat16: the high half of a float
  uint32_t bits = uint32_t(p[j]) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline float load(const _Float16* p, int64_t j) { return float(p[j]); }

inline void store(float* p, int64_t j, float x) { p[j] = x; }
inline void store(double* p, int64_t j, double x) { p[j] = x; }
inline void store(uint16_t* p, int64_t j, float x) {  // round to nearest even, as torch does
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  p[j] = std::isnan(x) ? uint16_t(0x7FC0) : uint16_t((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}
inline void store(_Float16* p, int64_t j, float x) { p[j] = _Float16(x); }

// n floats rounded to bfloat16 (nearest even): with AVX512-BF16, 16 at a time by VCVTNEPS2BF16 (which also
// flushes float32 denormals to zero, below any weight's scale); the vectoriser does not find that instruction
// itself, and the integer rounding of store() costs more than the pass's arithmetic.
inline void store_bf16(uint16_t* out, const float* in, int64_t n) {
  int64_t j = 0;
#if EVOPLASTIC_NATIVE_BF16
  for (; j + 16 <= n; j += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(in + j)));
#endif
  for (; j < n; ++j) store(out, j, in[j]);
}

// n float16 values to float and back (round to nearest even), 16 at a time with AVX-512: GCC 12 converts
// _Float16 element by element on a CPU without AVX512-FP16, several times slower than the pass itself.
inline void load_f16(float* out, const _Float16* in, int64_t n) {
  int64_t j = 0;
#if EVOPLASTIC_NATIVE_F16
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(out + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + j))));
#endif
  for (; j < n; ++j) out[j] = load(in, j);
}

inline void store_f16(_Float16* out, const float* in, int64_t n) {
  int64_t j = 0;
#if EVOPLASTIC_NATIVE_F16
  for (; j + 16 <= n; j += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                        _mm512_cvtps_ph(_mm512_loadu_ps(in + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; j < n; ++j) store(out, j, in[j]);
}

template <typename A>
inline A activation(int act, A z, A param) {
  switch (act) {
    case SOFTPLUS: {
      A t = param * z;
      return t > A(20) ? z : (std::fmax(t, A(0)) + std::log1p(std::exp(-std::fabs(t)))) / param;
    }
    case RELU: return z > A(0) ? z : A(0);
    case LEAKY_RELU: return z > A(0) ? z : z * param;
    case TANH: return std::tanh(z);
    case SIGMOID: return A(1) / (A(1) + std::exp(-z));
    case HARDTANH: return std::fmin(std::fmax(z, A(-1)), A(1));
    case HEAVISIDE: return z > A(0) ? A(1) : A(0);
    default: return A(0);
  }
}

// W_t written in the arithmetic's own type is the row buffer itself: u's pass reads it back from out (it is
// still in L1) instead of a copy, one store per weight fewer.
template <typename S, typename A, bool WRITE>
constexpr bool row_in_out() { return WRITE && std::is_same_v<S, A>; }

constexpr int TILE_ROWS = 4;  // rows formed together: R_k, v and u are loaded once per 4 rows of W

// NR (≤ 4) rows q of W_t: buf[q][j] = keep·w[q][j] - Σ_k l[q][k] R_k[j], written to out[q] (WRITE);
// dots[q] = buf[q]·v (DOT).
template <typename S, typename A, int RANK, bool DOT, bool WRITE, int NR>
inline void form_rows(const S* w, S* out, A keep, const A (&l)[TILE_ROWS][3],
                      const A* __restrict right, const A* __restrict v, A* __restrict buf, int64_t cols, A* dots) {
  const A* __restrict r0 = right;
  const A* __restrict r1 = right + cols;
  const A* __restrict r2 = right + 2 * cols;
  // 16-bit W is converted by the CPU's vector instructions where it has them: float16 W_{t-1} into buf
  // before the loop (which reads each element of buf, then overwrites it with W_t), and float16 or
  // bfloat16 W_t rounded from buf after it
  constexpr bool F16 = EVOPLASTIC_NATIVE_F16 && std::is_same_v<S, _Float16>;
  constexpr bool STORE_AFTER = F16 || (EVOPLASTIC_NATIVE_BF16 && std::is_same_v<S, uint16_t>);
  constexpr bool ROW_IN_OUT = row_in_out<S, A, WRITE>();
  if constexpr (F16) load_f16(buf, reinterpret_cast<const _Float16*>(w), NR * cols);
  A d0 = 0, d1 = 0, d2 = 0, d3 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
  for (int64_t j = 0; j < cols; ++j) {
    const A a0 = RANK > 0 ? r0[j] : A(0), a1 = RANK > 1 ? r1[j] : A(0), a2 = RANK > 2 ? r2[j] : A(0), vj = DOT ? v[j] : A(0);
#define EVOPLASTIC_ROW(q, dq)                                                   \
    if (NR > q) {                                                               \
      A x = keep * (F16 ? buf[q * cols + j] : A(load(w + q * cols, j)));        \
      if (RANK > 0) x -= l[q][0] * a0;                                          \
      if (RANK > 1) x -= l[q][1] * a1;                                          \
      if (RANK > 2) x -= l[q][2] * a2;                                          \
      if (!ROW_IN_OUT) buf[q * cols + j] = x;                                   \
      if (WRITE && !STORE_AFTER) store(out + q * cols, j, x);                   \
      if (DOT) dq += x * vj;                                                    \
    }
    EVOPLASTIC_ROW(0, d0)
    EVOPLASTIC_ROW(1, d1)
    EVOPLASTIC_ROW(2, d2)
    EVOPLASTIC_ROW(3, d3)
#undef EVOPLASTIC_ROW
  }
  if constexpr (WRITE && STORE_AFTER) {
    if constexpr (F16) store_f16(reinterpret_cast<_Float16*>(out), buf, NR * cols);
    else store_bf16(reinterpret_cast<uint16_t*>(out), buf, NR * cols);
  }
  dots[0] = d0, dots[1] = d1, dots[2] = d2, dots[3] = d3;
}

// u += Σ_q a[q] buf[q] over NR rows.
template <typename A, int NR>
inline void add_rows(A* __restrict u, const A* __restrict buf, const A (&a)[TILE_ROWS], int64_t cols) {
#pragma omp simd
  for (int64_t j = 0; j < cols; ++j) {
    A s = a[0] * buf[j];
    if (NR > 1) s += a[1] * buf[cols + j];
    if (NR > 2) s += a[2] * buf[2 * cols + j];
    if (NR > 3) s += a[3] * buf[3 * cols + j];
    u[j] += s;
  }
}

template <typename S, typename A, int RANK, bool DOT, bool WRITE, int NR>
void tile(const S* w, S* out, A keep, const A* left, const A* right, const A* v, const A* a, A* z, A* u, A* y,
          int64_t r, int64_t rows, int64_t cols, int act, A param, A* buf, A& run_max, A& run_sum) {
  A l[TILE_ROWS][3] = {}, dots[TILE_ROWS], weight[TILE_ROWS] = {};
  for (int q = 0; q < NR; ++q)
    for (int k = 0; k < RANK; ++k) l[q][k] = left[k * rows + r + q];
  form_rows<S, A, RANK, DOT, WRITE, NR>(w + r * cols, WRITE ? out + r * cols : nullptr, keep, l, right, v, buf, cols,
                                        dots);
  if (DOT)
    for (int q = 0; q < NR; ++q) z[r + q] = dots[q];
  if (act == ACT_NONE) return;
  if (act == ACT_SOFTMAX) {
    A top = run_max;
    for (int q = 0; q < NR; ++q) top = std::fmax(top, dots[q]);
    if (top > run_max) {  // rescale what was summed to the new maximum
      const A scale = std::exp(run_max - top);
      run_sum *= scale;
      A* __restrict uu = u;
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) uu[j] *= scale;
      run_max = top;
    }
  }
  for (int q = 0; q < NR; ++q) {
    if (act == ACT_GIVEN) weight[q] = a[r + q];
    else if (act == ACT_SOFTMAX) run_sum += (weight[q] = std::exp(dots[q] - run_max));
    else weight[q] = activation<A>(act, dots[q], param);
  }
  if (y && act != ACT_GIVEN && act != ACT_SOFTMAX) {  // the layer's output σ(z_r): the caller needs it next
    for (int q = 0; q < NR; ++q) y[r + q] = weight[q];
  }
  if constexpr (row_in_out<S, A, WRITE>()) add_rows<A, NR>(u, out + r * cols, weight, cols);
  else add_rows<A, NR>(u, buf, weight, cols);
}

template <typename S, typename A, int RANK, bool DOT, bool WRITE>
void pass_one_pair(const S* w, S* out, A keep, const A* left, const A* right, const A* v, const A* a, A* z, A* u, A* y,
                   int64_t rows, int64_t cols, int act, A param, A* __restrict buf) {
  A run_max = -INFINITY, run_sum = 0;
  if (act != ACT_NONE) std::fill(u, u + cols, A(0));
  int64_t r = 0;
  for (; r + TILE_ROWS <= rows; r += TILE_ROWS)
    tile<S, A, RANK, DOT, WRITE, TILE_ROWS>(w, out, keep, left, right, v, a, z, u, y, r, rows, cols, act, param, buf,
                                            run_max, run_sum);
  for (; r < rows; ++r)
    tile<S, A, RANK, DOT, WRITE, 1>(w, out, keep, left, right, v, a, z, u, y, r, rows, cols, act, param, buf, run_max,
                                    run_sum);
  if (act == ACT_SOFTMAX) {
    for (int64_t j = 0; j < cols; ++j) u[j] /= run_sum;
  }
}

template <typename S, typename A, int RANK>
void dispatch_pair(bool dot, bool write, const S* w, S* out, A keep, const A* left, const A* right, const A* v,
                   const A* a, A* z, A* u, A* y, int64_t rows, int64_t cols, int act, A param, A* row) {
  if (dot && write) pass_one_pair<S, A, RANK, true, true>(w, out, keep, left, right, v, a, z, u, y, rows, cols, act, param, row);
  else if (dot) pass_one_pair<S, A, RANK, true, false>(w, out, keep, left, right, v, a, z, u, y, rows, cols, act, param, row);
  else if (write) pass_one_pair<S, A, RANK, false, true>(w, out, keep, left, right, v, a, z, u, y, rows, cols, act, param, row);
  else pass_one_pair<S, A, RANK, false, false>(w, out, keep, left, right, v, a, z, u, y, rows, cols, act, param, row);
}

template <typename S, typename A>
void pass_pairs(const void* w, void* out, const void* keep, int64_t keep_stride, const void* left,
                const void* right, int rank, const void* v, int64_t v_stride, const void* a, void* z, void* u, void* y,
                int64_t c, int64_t rows, int64_t cols, int act, double param, int threads) {
  const S* ws = static_cast<const S*>(w);
  S* os = static_cast<S*>(out);
  const A* ks = static_cast<const A*>(keep);
  const A* ls = static_cast<const A*>(left);
  const A* rs = static_cast<const A*>(right);
  const A* vs = static_cast<const A*>(v);
  const A* as = static_cast<const A*>(a);
  A* zs = static_cast<A*>(z);
  A* us = static_cast<A*>(u);
  A* ys = static_cast<A*>(y);
#pragma omp parallel num_threads(threads) if (threads > 1 && c > 1)
  {
    std::vector<A> row(TILE_ROWS * cols);
#pragma omp for schedule(static)
    for (int64_t m = 0; m < c; ++m) {
      const S* wm = ws + m * rows * cols;
      S* om = os ? os + m * rows * cols : nullptr;
      const A* lm = ls + m * rank * rows;
      const A* rm = rs + m * rank * cols;
      const A* vm = vs ? vs + m * v_stride : nullptr;
      const A* am = as ? as + m * rows : nullptr;
      A* zm = zs ? zs + m * rows : nullptr;
      A* ym = ys ? ys + m * rows : nullptr;
      A* um = us ? us + m * cols : nullptr;
      const bool dot = vs != nullptr, write = os != nullptr;
      if (rank == 0) dispatch_pair<S, A, 0>(dot, write, wm, om, ks[m * keep_stride], lm, rm, vm, am, zm, um, ym, rows, cols, act, A(param), row.data());
      else if (rank == 1) dispatch_pair<S, A, 1>(dot, write, wm, om, ks[m * keep_stride], lm, rm, vm, am, zm, um, ym, rows, cols, act, A(param), row.data());
      else if (rank == 2) dispatch_pair<S, A, 2>(dot, write, wm, om, ks[m * keep_stride], lm, rm, vm, am, zm, um, ym, rows, cols, act, A(param), row.data());
      else dispatch_pair<S, A, 3>(dot, write, wm, om, ks[m * keep_stride], lm, rm, vm, am, zm, um, ym, rows, cols, act, A(param), row.data());
    }
  }
}

}  // namespace

extern "C" int evoplastic_row_pass(int storage, const void* w, void* out, const void* keep, int64_t keep_stride,
                                   const void* left, const void* right, int rank, const void* v, int64_t v_stride,
                                   const void* a, void* z, void* u, void* y, int64_t c, int64_t rows, int64_t cols,
                                   int act,
                                   double param, int threads) {
  if (rank < 0 || rank > 3) return 1;
  switch (storage) {
    case F32: pass_pairs<float, float>(w, out, keep, keep_stride, left, right, rank, v, v_stride, a, z, u, y, c, rows,
                                       cols, act, param, threads); return 0;
    case F64: pass_pairs<double, double>(w, out, keep, keep_stride, left, right, rank, v, v_stride, a, z, u, y, c,
                                         rows, cols, act, param, threads); return 0;
    case BF16: pass_pairs<uint16_t, float>(w, out, keep, keep_stride, left, right, rank, v, v_stride, a, z, u, y, c,
                                           rows, cols, act, param, threads); return 0;
    case F16: pass_pairs<_Float16, float>(w, out, keep, keep_stride, left, right, rank, v, v_stride, a, z, u, y, c,
                                          rows, cols, act, param, threads); return 0;
    default: return 2;
  }
}
