// The named steps of the dense/points solver (emd::solve in transport.cpp chooses among them):
// each strategy lives in its own file and returns a Solution whose certificate is then checked.
#pragma once

#include <cstdint>

#include "emd/costs.h"
#include "emd/emd.h"
#include "emd/network_simplex.h"

#include <functional>
#include <vector>

namespace pygan::emd {

// The rows and columns with positive mass (the others take no part in the network).
struct Active {
  std::vector<int32_t> rows, cols;     // original indices of positive-mass rows / columns
  std::vector<int32_t> col_pos;        // original column -> active index, or -1
};

// NOTE: [Multiscale start] (multiscale.cpp): solves the problem restricted to a random quarter of
// the active rows and columns (recursively, through emd::solve) and extends its duals to every
// active column by a c-transform over the sampled rows: col_dual[l] = min_t C(row_t, l) - u_t.
// The two halves are separate so that NOTE: [Assignment probe] can solve the quarter first and
// the multiscale start reuse it.
struct Subsample {
  std::vector<int32_t> rows, cols;  // positions in act.rows / act.cols, ascending
  Solution sol;                     // the quarter problem's solution
};
Subsample solve_subsample(int64_t m, const Costs& costs, const Active& act, const std::vector<double>& supply,
                          const std::vector<double>& demand, const Options& options);
void subsampled_column_duals(int64_t m, const Costs& costs, const CostRows& cost_rows,
                             const Active& act, const std::vector<double>& supply,
                             const std::vector<double>& demand, const Options& options,
                             const ParallelFor& parallel_for, int64_t grain, std::vector<double>& col_dual,
                             const Subsample* solved = nullptr);

// NOTE: [Certificate] (certificate.cpp): measures the plan's marginals, dual feasibility on every
// pair and the duality gap of `sol` (plan, duals u/v, cost already filled in), stores them in
// sol and returns whether each is within the rounding float64 allows. abs_cost = sum plan * |C|.
// A zero-mass row may come with u_i = +inf: the certificate's pass over its costs then sets u_i to
// the row's c-transform (emd::solve leaves those rows to it).
bool certify(int64_t n, int64_t m, const double* a, const double* b_scaled, double sum_a, double abs_cost,
             const CostRows& cost_rows, bool matrix, const ParallelFor& parallel_for, int64_t grain,
             Solution& sol);

// NOTE: [Assignment start] (assignment.cpp): n x n with every a_i equal and every b_j equal, so an
// optimal assignment scaled by the common mass is an optimal plan. Solves it by shortest
// augmenting paths with duals (Jonker-Volgenant column reduction, then Crouse's dense
// augmentation) and fills sol's plan, duals (centred), cost, iterations (augmenting paths) and
// certificate. Returns false, leaving sol unspecified, when the certificate fails (the caller
// then runs the network simplex).
bool is_uniform_square(int64_t n, int64_t m, const double* a, const double* b);
bool solve_assignment(int64_t n, const double* a, const double* b_scaled, double sum_a,
                      const CostRows& cost_rows, bool matrix, const ParallelFor& parallel_for,
                      int64_t grain, Solution& sol);

// Adds the arcs a pricing pass chose: row r's are the active columns idx[r * per_row + t] for
// t < size[r], each with its cost from cost_rows, in row order (the order the simplex's block
// search then walks). Returns how many were added.
inline int64_t add_chosen_arcs(const std::vector<int32_t>& idx, const std::vector<int32_t>& size, int64_t per_row,
                               const CostRows& cost_rows, const Active& act,
                               const std::function<void(int32_t, int32_t, double)>& add_arc) {
  int64_t added = 0;
  for (int32_t r = 0; r < int32_t(size.size()); ++r) {
    for (int32_t t = 0; t < size[r]; ++t) {
      const int32_t l = idx[size_t(r) * per_row + t];
      add_arc(r, l, cost_rows.at(act.rows[r], act.cols[l]));
    }
    added += size[r];
  }
  return added;
}

// A pricing round (pricing.cpp): prices every (active row, column) pair against the simplex's
// potentials and adds each row's add_per_row most violating arcs through add_arc(row, col, cost)
// (active indices, the pair's cost); returns how many were added. Scratch is kept between rounds.
class PricingRound {
 public:
  PricingRound(int64_t m, bool matrix, const CostRows& cost_rows, const Active& act, int64_t add_per_row,
               const ParallelFor& parallel_for, int64_t grain);
  int64_t round(const TransportSimplex& simplex, const std::vector<double>& shift_r,
                const std::vector<double>& shift_c, const std::function<void(int32_t, int32_t, double)>& add_arc);

 private:
  int64_t m_;
  bool matrix_;
  const CostRows& cost_rows_;
  const Active& act_;
  int64_t add_per_row_;
  const ParallelFor& parallel_for_;
  int64_t grain_;
  std::vector<double> add_key_, col_pi_;
  std::vector<int32_t> add_idx_, add_size_, col_lv_;
};

// NOTE: [Column selection] (column_select.cpp): each active column's k best active rows by
// C_ij - row_dual[i], into col_idx[l * k + t] (t < k; requires 1 <= k <= the number of active rows);
// row_order is a fixed random permutation of the active rows (its first entries are the sample of
// the columns' threshold estimates).
void select_columns(int64_t m, int64_t k, const Costs& costs, const CostRows& cost_rows, const Active& act,
                    const std::vector<double>& row_dual, const std::vector<int32_t>& row_order,
                    const ParallelFor& parallel_for, std::vector<int32_t>& col_idx);

// NOTE: [Complete start] (complete_start.cpp): a first basis for a problem whose arc set is every
// pair (arc r * ma + l costs cost[r * ma + l], active indices): the arcs of a greedy fill that
// carry more than `crumb`, into `basis` (a forest; see TransportSimplex::start_from_forest).
// Leaves `basis` empty (keep the big-M start) above 128 x 128 pairs.
void complete_start_basis(int32_t na, int32_t ma, const double* cost, const std::vector<double>& supply,
                          const std::vector<double>& demand, double crumb, std::vector<int64_t>& basis);

}  // namespace pygan::emd
