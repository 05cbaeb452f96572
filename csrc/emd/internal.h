// The named steps of the dense/points solver (emd::solve in transport.cpp chooses among them):
// each strategy lives in its own file and returns a Solution whose certificate is then checked.
#pragma once

#include <cstdint>

#include "emd/costs.h"
#include "emd/emd.h"

namespace pygan::emd {

// NOTE: [Certificate] (certificate.cpp): measures the plan's marginals, dual feasibility on every
// pair and the duality gap of `sol` (plan, duals u/v, cost already filled in), stores them in
// sol and returns whether each is within the rounding float64 allows. abs_cost = sum plan * |C|.
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

}  // namespace pygan::emd
