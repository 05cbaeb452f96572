// Each column's k best rows for the first arc set of emd::solve (transport.cpp): NOTE: [Column
// selection].
#include <algorithm>
#include <limits>
#include <vector>

#include "emd/costs.h"
#include "emd/internal.h"
#include "emd/select.h"

namespace pygan::emd {

// NOTE: [Column selection]
// Each active column's k best active rows by key C_ij - u_i (its own dual v_j is the same for all
// of them, so it does not change the ranking), written to col_idx[l * k ...]. The columns go in
// blocks of kColumnBlock, spread over the threads: the block's keys are gathered in one pass down
// the rows (a copy of 16 consecutive costs from each cost row), then each column's threshold is
// estimated on a fixed random sample of rows (the first of row_order; about 32 of its keys fall
// below the column's 2k-th smallest), the keys below it kept and cut to the k smallest by
// nth_element (all keys, should fewer than k fall below). The keys among equal ones that enter
// are nth_element's choice (any k smallest do: the first arcs only decide where the search starts).
// This replaced buffers filled during the rows' pass (2k slots per column and per thread), which
// took every key of the first 2k rows and ~k ln(n / 2k) more and, on 2 threads, each thread's
// buffers seeing half the rows, hardly sped up: 1000 x 1500 clouds with k = 128, the rows' and
// columns' selection 38 ms on 1 thread, 33 on 2; now 17 + 12 ms on 1 thread, 9 + 6 on 2, the same
// arcs and pivots (docs/ot.md, "Performance").
namespace {
constexpr int32_t kColumnBlock = 16;
}  // namespace

void select_columns(int64_t m, int64_t k, const Costs& costs, const CostRows& cost_rows, const Active& act,
                    const std::vector<double>& row_dual, const std::vector<int32_t>& row_order,
                    const ParallelFor& parallel_for, std::vector<int32_t>& col_idx) {
  const int32_t na = static_cast<int32_t>(act.rows.size()), ma = static_cast<int32_t>(act.cols.size());
  const bool all_cols = ma == m;
  const int64_t blocks = (ma + kColumnBlock - 1) / kColumnBlock;
  // The sample: about 32 of its keys fall below the 2k-th smallest of all (a rank estimated within
  // ~20 %, so that ~2k keys are kept and fewer than k almost never).
  const int32_t sample = int32_t(std::min<int64_t>(na, (16 * int64_t(na) + k - 1) / k));
  const int32_t sample_rank = int32_t((2 * k * int64_t(sample) + na - 1) / na);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / (int64_t(na) * kColumnBlock));
  parallel_for(0, blocks, grain, [&](int64_t lo, int64_t hi) {
    // keys[r * kColumnBlock + t]: row r's key for the block's column t (each row's part one
    // contiguous copy; the block, na * 128 bytes, stays in cache for the columns' passes).
    std::vector<double> keys(size_t(kColumnBlock) * na), sampled(sample);
    std::vector<KeyIndex> kept(na);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int32_t l0 = int32_t(blk * kColumnBlock), width = std::min<int32_t>(kColumnBlock, ma - l0);
      for (int32_t r = 0; r < na; ++r) {
        const double ur = row_dual[r];
        double* out = keys.data() + size_t(r) * kColumnBlock;
        if (costs.matrix) {
          const double* c = costs.matrix + int64_t(act.rows[r]) * m;
          if (all_cols)
            for (int32_t t = 0; t < width; ++t) out[t] = c[l0 + t] - ur;
          else
            for (int32_t t = 0; t < width; ++t) out[t] = c[act.cols[l0 + t]] - ur;
        } else {
          for (int32_t t = 0; t < width; ++t) out[t] = cost_rows.at(act.rows[r], act.cols[l0 + t]) - ur;
        }
      }
      for (int32_t t = 0; t < width; ++t) {
        const double* key = keys.data() + t;  // row r's at key[r * kColumnBlock]
        double estimate = std::numeric_limits<double>::infinity();
        if (sample_rank < sample) {
          for (int32_t q = 0; q < sample; ++q) sampled[q] = key[size_t(row_order[q]) * kColumnBlock];
          std::nth_element(sampled.begin(), sampled.begin() + (sample_rank - 1), sampled.end());
          estimate = sampled[sample_rank - 1];
        }
        int32_t size = 0;
        for (int32_t r = 0; r < na; ++r) {
          const double value = key[size_t(r) * kColumnBlock];
          if (value < estimate) kept[size++] = {value, r};
        }
        if (size < k) {
          size = 0;
          for (int32_t r = 0; r < na; ++r) kept[size++] = {key[size_t(r) * kColumnBlock], r};
        }
        std::nth_element(kept.begin(), kept.begin() + (k - 1), kept.begin() + size,
                         [](const KeyIndex& x, const KeyIndex& y) { return x.key < y.key; });
        int32_t* dst = col_idx.data() + size_t(l0 + t) * k;
        for (int32_t q = 0; q < k; ++q) dst[q] = kept[q].idx;
      }
    }
  });
}

}  // namespace pygan::emd
