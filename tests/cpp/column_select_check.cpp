// A test driver for the first arc set's column selection (NOTE: [Column selection] in
// csrc/emd/column_select.cpp); tests/test_emd_column_select.py compiles it with that file.
//
// stdin: problems, each "n m d k grain" (d = 0: a row-major n x m cost matrix follows; d > 0:
// n points then m points of d coordinates, Euclidean costs), then "na" and the active rows'
// indices, "ma" and the active columns', the na row duals and a permutation of 0 .. na - 1 (the
// sample order). The parallel_for handed to the selection calls its body serially on pieces of
// `grain` indices (as a thread pool would split them), so more than one piece runs.
// stdout per problem: ma lines, each the k active row indices chosen for that active column.
#include <cstdio>
#include <functional>
#include <vector>

#include "emd/costs.h"
#include "emd/internal.h"

using namespace pygan::emd;

int main() {
  long long n, m, d, k, grain;
  while (std::scanf("%lld %lld %lld %lld %lld", &n, &m, &d, &k, &grain) == 5) {
    std::vector<double> matrix, x, y;
    Costs costs;
    if (d == 0) {
      matrix.resize(size_t(n * m));
      for (double& v : matrix) std::scanf("%lf", &v);
      costs.matrix = matrix.data();
    } else {
      x.resize(size_t(n * d)), y.resize(size_t(m * d));
      for (double& v : x) std::scanf("%lf", &v);
      for (double& v : y) std::scanf("%lf", &v);
      costs.x = x.data(), costs.y = y.data(), costs.dim = d, costs.metric = Metric::Euclidean;
    }
    Active act;
    int na, ma;
    std::scanf("%d", &na);
    act.rows.resize(na);
    for (int32_t& r : act.rows) std::scanf("%d", &r);
    std::scanf("%d", &ma);
    act.cols.resize(ma);
    for (int32_t& c : act.cols) std::scanf("%d", &c);
    act.col_pos.assign(size_t(m), -1);
    for (int l = 0; l < ma; ++l) act.col_pos[act.cols[l]] = l;
    std::vector<double> row_dual(na);
    for (double& u : row_dual) std::scanf("%lf", &u);
    std::vector<int32_t> row_order(na);
    for (int32_t& r : row_order) std::scanf("%d", &r);
    const ParallelFor pieces = [grain](int64_t begin, int64_t end, int64_t, const std::function<void(int64_t, int64_t)>& body) {
      for (int64_t lo = begin; lo < end; lo += grain) body(lo, std::min<int64_t>(end, lo + grain));
    };
    const CostRows cost_rows(costs, m);
    std::vector<int32_t> col_idx(size_t(ma) * k);
    select_columns(m, k, costs, cost_rows, act, row_dual, row_order, pieces, col_idx);
    for (int l = 0; l < ma; ++l) {
      for (long long t = 0; t < k; ++t) std::printf("%d%c", col_idx[size_t(l) * k + t], t + 1 < k ? ' ' : '\n');
    }
  }
}
