// The exact discrete EMD (optimal transport) solver: pygan's torch-free core.
//
// Raw arrays in, a status out (as POT's ot/lp core). Everything is float64 inside; the binding
// (csrc/emd_binding.cpp) converts torch tensors, releases the GIL and supplies a parallel-for.
//
// Problem: min <P, C> over P >= 0 with P 1 = a, P^T 1 = b, where C is either a dense row-major
// n x m matrix or computed on the fly from points (c(x_i, y_j) = ||x_i - y_j||^p), so that large
// point clouds never need the n x m matrix.
//
// Method (see docs/ot.md): a network simplex on a *restricted* set of arcs (for each row its k
// cheapest columns and for each column its k cheapest rows), then pricing of *every* (i, j) against
// the restricted optimum's potentials; arcs with a negative reduced cost are added and the simplex
// resumes from its current basis. The loop ends when no arc of the full problem prices out, which
// is exactly the LP optimality condition: the result is the optimum of the full problem, with the
// duals as its certificate.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace pygan::emd {

// POT's result codes (0-3), and Imprecise: the simplex ended but the float64 certificate of the
// answer (Solution::primal_residual, dual_violation, duality_gap) is outside its tolerance, so the
// answer is not claimed optimal.
enum class Status : int { Infeasible = 0, Optimal = 1, Unbounded = 2, IterationLimit = 3, Imprecise = 4 };

const char* status_name(Status s);

// parallel_for(begin, end, grain, body): calls body(lo, hi) on disjoint sub-ranges covering
// [begin, end), possibly concurrently, none shorter than grain unless the range is. The default
// runs body(begin, end) on the calling thread.
using ParallelFor =
    std::function<void(int64_t, int64_t, int64_t, const std::function<void(int64_t, int64_t)>&)>;
ParallelFor serial_for();

enum class Metric : int { SqEuclidean = 0, Euclidean = 1, Power = 2 };

// Where the costs come from: exactly one of `matrix` (n x m, row-major) or `x`/`y` (n x d, m x d,
// row-major) is set.
struct Costs {
  const double* matrix = nullptr;
  const double* x = nullptr;
  const double* y = nullptr;
  int64_t dim = 0;
  Metric metric = Metric::Euclidean;
  double p = 1.0;  // used by Metric::Power: c = ||x - y||^p
};

struct Options {
  int64_t max_iter = -1;         // simplex pivots over all rounds; < 0: no limit
  int64_t neighbours = 0;        // k of the first arc set; 0: 32
  int64_t add_per_row = 0;       // most arcs added per row and pricing round; 0: 32
  bool multiscale = true;        // choose the first arcs with duals of a subsampled problem
  // Start the simplex on the restricted arcs from the greedy fill's basis instead of the big-M
  // tree (NOTE: [Feasible start] in network_simplex.h).
  bool feasible_start = true;
  // A warm start (n and m values, or null): duals of a nearby problem, e.g. the previous solve of
  // a training loop. They replace the multiscale start's approximate duals in choosing the first
  // arcs. Must be finite.
  const double* init_u = nullptr;
  const double* init_v = nullptr;
  ParallelFor parallel_for;      // empty: serial
};

struct Solution {
  Status status = Status::Optimal;
  double cost = 0.0;              // sum of plan * cost over the stored entries
  int64_t iterations = 0;         // simplex pivots
  int64_t rounds = 0;             // pricing rounds over all n x m arcs
  int64_t arcs = 0;               // size of the final restricted arc set
  // The assignment solver's Dijkstra steps over all its augmenting paths (one row scan each); -1
  // when the network simplex answered. (NOTE: [Assignment probe] in transport.cpp reads it.)
  int64_t scans = -1;
  std::vector<int64_t> rows, cols;  // the plan's non-zeros (at most n + m - 1), row-major order
  std::vector<double> values;
  std::vector<double> u, v;       // duals: u_i + v_j <= C_ij everywhere, centred so a.u == b.v
  // The certificate, measured after the solve on every pair (NOTE: [Certificate] in transport.cpp):
  double primal_residual = 0.0;   // max |row / column sum of the plan - a / b|
  double dual_violation = 0.0;    // max(0, max_ij u_i + v_j - C_ij)
  double duality_gap = 0.0;       // |cost - (a.u + b.v)|
};

// Solves one problem. a (n), b (m): non-negative and finite, with positive totals; b is rescaled
// by sum(a) / sum(b) inside (callers check that the totals agree to their tolerance). Costs must
// be finite. Never throws for numerical reasons; throws std::invalid_argument on misuse.
Solution solve(int64_t n, int64_t m, const double* a, const double* b, const Costs& costs,
               const Options& options);

// A sparse cost matrix: the only arcs (row, col) that exist, with their costs. No duplicates.
struct ArcList {
  int64_t count = 0;
  const int64_t* rows = nullptr;
  const int64_t* cols = nullptr;
  const double* costs = nullptr;
};

// Solves one problem over the listed arcs only (csrc/emd/sparse.cpp): Infeasible when they cannot
// carry the masses. Duals are feasible on the listed arcs; the certificate is measured there.
Solution solve_sparse(int64_t n, int64_t m, const double* a, const double* b, const ArcList& arcs,
                      const Options& options);

}  // namespace pygan::emd
