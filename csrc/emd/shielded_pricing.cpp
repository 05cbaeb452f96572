// NOTE: [Bounded pricing]
// A pricing round for costs given as points that is still a proof but does not compute every
// pair. Each cloud is cut by a k-d tree into blocks of kBlock points, each block with a centre
// and a radius (its points' largest distance from the centre). For a row block R and a column
// block L every pair's distance is at least the gap g = |c_R - c_L| - r_R - r_L, so every
// reduced cost in R x L is at least cost(g) - max_R u - max_L v. Where that bound is positive (by
// a margin above the rounding of the reduced costs, whose own tolerance only adds to them), no
// pair of the block can price out and the block is skipped; the others are priced pair by pair
// exactly as PricingRound does. With tight duals most far blocks are skipped: the round costs
// (n / kBlock)^2 bounds plus the pairs of the blocks near the plan. Symbolic big-M levels (a
// basis that still uses an artificial arc) are not bounded: such a round prices every block.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>
#ifdef PYGAN_EMD_TRACE
#include <cstdio>
#endif

#include "emd/hierarchy.h"

namespace pygan::emd {

namespace {

constexpr int32_t kBlock = 32;
// Above this fraction of pairs priced, PricingRound's plain pass over every pair is cheaper.
constexpr double kUsefulFraction = 0.85;

// k-d blocks of the points ids (indices into coords): order[] lists the positions 0..count-1
// block by block, block b holding order[start[b] .. start[b + 1]).
void kd_blocks(const double* coords, int64_t d, const std::vector<int32_t>& ids, std::vector<int32_t>& order,
               std::vector<int32_t>& start) {
  const int32_t count = int32_t(ids.size());
  order.resize(count);
  std::iota(order.begin(), order.end(), 0);
  start.assign(1, 0);
  std::vector<std::pair<int32_t, int32_t>> stack{{0, count}};
  std::vector<double> lo(d), hi(d);
  while (!stack.empty()) {
    const auto [b, e] = stack.back();
    stack.pop_back();
    if (e - b <= kBlock) {
      start.push_back(e);  // stack order visits the leaves left to right
      continue;
    }
    std::fill(lo.begin(), lo.end(), std::numeric_limits<double>::infinity());
    std::fill(hi.begin(), hi.end(), -std::numeric_limits<double>::infinity());
    for (int32_t t = b; t < e; ++t) {
      const double* p = coords + int64_t(ids[order[t]]) * d;
      for (int64_t k = 0; k < d; ++k) lo[k] = std::min(lo[k], p[k]), hi[k] = std::max(hi[k], p[k]);
    }
    int64_t w = 0;
    for (int64_t k = 1; k < d; ++k)
      if (hi[k] - lo[k] > hi[w] - lo[w]) w = k;
    const int32_t mid = b + (e - b) / 2;
    std::nth_element(order.begin() + b, order.begin() + mid, order.begin() + e, [&](int32_t s, int32_t t) {
      return coords[int64_t(ids[s]) * d + w] < coords[int64_t(ids[t]) * d + w];
    });
    stack.push_back({mid, e});
    stack.push_back({b, mid});
  }
}

void block_balls(const double* coords, int64_t d, const std::vector<int32_t>& ids, const std::vector<int32_t>& order,
                 const std::vector<int32_t>& start, std::vector<double>& centre, std::vector<double>& radius) {
  const size_t blocks = start.size() - 1;
  centre.assign(blocks * d, 0.0);
  radius.assign(blocks, 0.0);
  for (size_t b = 0; b < blocks; ++b) {
    double* c = centre.data() + b * d;
    for (int64_t k = 0; k < d; ++k) {  // the bounding box's centre
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      for (int32_t t = start[b]; t < start[b + 1]; ++t) {
        const double x = coords[int64_t(ids[order[t]]) * d + k];
        lo = std::min(lo, x), hi = std::max(hi, x);
      }
      c[k] = lo + 0.5 * (hi - lo);
    }
    double r = 0.0;
    for (int32_t t = start[b]; t < start[b + 1]; ++t) {
      const double* p = coords + int64_t(ids[order[t]]) * d;
      double s = 0.0;
      for (int64_t k = 0; k < d; ++k) s += (p[k] - c[k]) * (p[k] - c[k]);
      r = std::max(r, std::sqrt(s));
    }
    radius[b] = r * (1 + 1e-12);  // rounding of the distances above: the bound stays below
  }
}

}  // namespace

void BoundedPricing::build(const Costs& costs, const Active& act) {
  costs_ = costs;
  kd_blocks(costs.x, costs.dim, act.rows, row_order_, row_start_);
  kd_blocks(costs.y, costs.dim, act.cols, col_order_, col_start_);
  block_balls(costs.x, costs.dim, act.rows, row_order_, row_start_, row_centre_, row_radius_);
  block_balls(costs.y, costs.dim, act.cols, col_order_, col_start_, col_centre_, col_radius_);
  const int64_t d = costs.dim, ma = int64_t(act.cols.size()), cb = int64_t(col_start_.size()) - 1;
  col_centre_soa_.resize(size_t(d * cb));
  for (int64_t q = 0; q < cb; ++q)
    for (int64_t k = 0; k < d; ++k) col_centre_soa_[size_t(k * cb + q)] = col_centre_[size_t(q * d + k)];
  col_xy_.resize(size_t(d * ma));
  for (int64_t s = 0; s < ma; ++s)
    for (int64_t k = 0; k < d; ++k) col_xy_[size_t(k * ma + s)] = costs.y[int64_t(act.cols[col_order_[s]]) * d + k];
  col_pi_.resize(ma);
  col_lv_.resize(ma);
}


template <Metric kMetric>
int64_t BoundedPricing::price(const TransportSimplex& simplex, const std::vector<double>& shift_r, const CostRows& cost_rows,
                              const Active& act, int64_t add_per_row, bool levels, const std::vector<double>& vmax,
                              const ParallelFor& parallel_for) {
  const int32_t ma = int32_t(act.cols.size());
  const double* pi = simplex.potentials();
  const int32_t* lv = simplex.levels();
  const int64_t rb = int64_t(row_start_.size()) - 1, cb = int64_t(col_start_.size()) - 1, d = costs_.dim;
  const double p = costs_.p;
  const double* ccs = col_centre_soa_.data();
  const double* crad = col_radius_.data();
  const double* vm = vmax.data();
  const double* cxy = col_xy_.data();
  const double* cpi = col_pi_.data();
  const int32_t* clv = col_lv_.data();
  const int32_t* cstart = col_start_.data();
  std::vector<int64_t> priced(rb, 0);
  parallel_for(0, rb, 1, [&](int64_t lo, int64_t hi) {
    std::vector<uint8_t> skip(cb, 0);
    std::vector<double> score(ma), sq(cb);
    for (int64_t b = lo; b < hi; ++b) {
      for (int32_t t = row_start_[b]; t < row_start_[b + 1]; ++t) {
        const int32_t r = row_order_[t];
        const double pr = pi[r] - shift_r[r], u = -pr;
        const int32_t lr = lv[r];
        const double* x = costs_.x + int64_t(act.rows[r]) * d;
        SmallestK heap{key_.data() + size_t(r) * add_per_row, idx_.data() + size_t(r) * add_per_row, int32_t(add_per_row)};
        // The row's point against every column block's ball, in one pass (symbolic levels: no
        // bound, every block priced).
        if (!levels) {
          double* sqd = sq.data();
          std::fill(sqd, sqd + cb, 0.0);
          for (int64_t k = 0; k < d; ++k) {
            const double xk = x[k];
            const double* ck = ccs + k * cb;
#pragma omp simd
            for (int64_t q = 0; q < cb; ++q) sqd[q] += (xk - ck[q]) * (xk - ck[q]);
          }
          uint8_t* sk = skip.data();
#pragma omp simd
          for (int64_t q = 0; q < cb; ++q) {
            const double gap = std::sqrt(sqd[q]) * (1 - 1e-12) - crad[q];
            const double g = cost_from_distance<kMetric>(gap, p);
            const double lb = g * (1 - 1e-12), slack = lb - u - vm[q];
            // gap > 0 and finite (a NaN or infinite gap compares false), slack above rounding.
            sk[q] = gap > 0 && gap < std::numeric_limits<double>::infinity() &&
                    slack > 1e-12 * (std::fabs(lb) + std::fabs(u) + std::fabs(vm[q]));
          }
        }
        // Runs of consecutive blocks not skipped: their pairs are contiguous in block order.
        for (int64_t q = 0; q < cb;) {
          if (!levels && skip[q]) {
            ++q;
            continue;
          }
          int64_t q1 = q + 1;
          while (q1 < cb && (levels || !skip[q1])) ++q1;
          const int32_t s0 = cstart[q], s1 = cstart[q1];
          q = q1;
          priced[b] += s1 - s0;
          double* sc = score.data();
          const double lowest = score_pairs<kMetric>(
              x, d, p, cxy, ma, cpi, clv, pr, lr, s0, s1, [](int32_t s) { return s; },
              [&](int32_t s) { return cost_rows.at(act.rows[r], act.cols[col_order_[s]]); }, sc);
          if (lowest < 0)
            for (int32_t s = s0; s < s1; ++s)
              if (sc[s - s0] < 0) heap.push(sc[s - s0], col_order_[s]);
        }
        size_[r] = heap.size;
      }
    }
  });
  return std::accumulate(priced.begin(), priced.end(), int64_t(0));
}

int64_t BoundedPricing::round(const TransportSimplex& simplex, const std::vector<double>& shift_r,
                              const std::vector<double>& shift_c, const CostRows& cost_rows, const Active& act,
                              int64_t add_per_row, const ParallelFor& parallel_for,
                              const std::function<void(int32_t, int32_t, double)>& add_arc) {
  const int32_t na = int32_t(act.rows.size()), ma = int32_t(act.cols.size());
  const double* pi = simplex.potentials();
  const int32_t* lv = simplex.levels();
  bool levels = false;
  for (int32_t t = 0; t < na + ma; ++t) levels = levels || lv[t] != lv[0];
  const int64_t cb = int64_t(col_start_.size()) - 1;
  // v_l = pi_l + shift_c in block order, and the largest of each block (u_r = -(pi_r - shift_r)
  // is the row's own, exact).
  for (int32_t s = 0; s < ma; ++s) {
    const int32_t l = col_order_[s];
    col_pi_[s] = pi[na + l] + shift_c[l];
    col_lv_[s] = lv[na + l];
  }
  std::vector<double> vmax(cb, -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < cb; ++b) {
    double best = -std::numeric_limits<double>::infinity();
    for (int32_t s = col_start_[b]; s < col_start_[b + 1]; ++s) best = std::max(best, col_pi_[s]);
    vmax[b] = best;
  }
  key_.assign(size_t(na) * add_per_row, 0.0);
  idx_.assign(key_.size(), 0);
  size_.assign(na, 0);
  switch (costs_.metric) {
    case Metric::SqEuclidean:
      pairs_priced = price<Metric::SqEuclidean>(simplex, shift_r, cost_rows, act, add_per_row, levels, vmax, parallel_for);
      break;
    case Metric::Euclidean:
      pairs_priced = price<Metric::Euclidean>(simplex, shift_r, cost_rows, act, add_per_row, levels, vmax, parallel_for);
      break;
    case Metric::Power:
      pairs_priced = price<Metric::Power>(simplex, shift_r, cost_rows, act, add_per_row, levels, vmax, parallel_for);
      break;
  }
  useful_ = pairs_priced < int64_t(kUsefulFraction * double(na) * ma);
#ifdef PYGAN_EMD_TRACE
  std::fprintf(stderr, "  bounded pricing: %.3g of the pairs priced (levels %d)\n", double(pairs_priced) / (double(na) * ma), int(levels));
#endif
  return add_chosen_arcs(idx_, size_, add_per_row, cost_rows, act, add_arc);
}

}  // namespace pygan::emd
