// A primal network simplex for the transportation problem over a growing set of arcs.
//
// Nodes: rows 0..n-1 (supplies), columns n..n+m-1 (demands) and an artificial root n+m. Arcs:
// ids 0..n+m-1 are the artificial arcs (row -> root at cost 0, root -> column at a big cost, the
// "big-M" start: every node hangs off the root), real arcs row -> column are appended by add_arc()
// at any time with flow 0, so the solve can resume from the current basis after new arcs arrive.
// Capacities are infinite, so a non-tree arc always sits at its lower bound (flow 0).
//
// NOTE: [Strongly feasible trees]
// Degenerate pivots (flow change 0) are the rule in transport problems (an assignment has n - 1
// of its 2n - 1 basic arcs at zero flow). Cycling is prevented by keeping the spanning tree
// strongly feasible (Cunningham 1976): the start tree is (every artificial arc carries its node's
// full, positive mass), and the leaving arc is the *last* blocking arc met when the pivot cycle is
// walked in its orientation starting at the apex (the join of the two tree paths). Ties are broken
// toward that rule with < on the way down and <= on the way up (see pivot()).
//
// NOTE: [Tree representation]
// As in LEMON (and POT, which copies it): per node its parent, pred (the tree arc to the parent),
// up (that arc points from the node to its parent), a preorder "thread" with its reverse, the
// subtree size succ_num and the subtree's last node in the thread, last_succ. So a subtree is the
// thread segment u .. last_succ(u), and a pivot's tree update touches only the stem (the path from
// the entering arc's endpoint to the leaving arc) and the two paths up to the apex: whole thread
// segments are relinked, never walked node by node. The apex is found by climbing from the side
// with the smaller subtree. The potentials then change by one constant on one side of the cut:
// the moved subtree T or, when T holds more than half the nodes, everything else by the opposite
// constant (reduced costs depend on differences of potentials only). PYGAN_EMD_CHECK_TREE
// (a compile-time define) checks every invariant after each pivot, for tests of the tree code.
//
// NOTE: [Symbolic big-M]
// The root reaches every column through an artificial arc whose cost is "M, larger than any path
// of real arcs". A numeric M (max|C| * (n + m + 1)) puts that huge number into the potentials of
// every node that still hangs off such an arc, and then the reduced costs of ordinary arcs are
// differences of numbers ~M: with one cost of 1e20 in the matrix, costs of order 1 vanish below
// the rounding of the potentials and the simplex stops at a wrong plan. So M is kept symbolic:
// every potential is a pair (level, value) meaning level * M + value, where level counts the
// artificial column arcs on the node's tree path, and reduced costs are compared lexicographically
// (a non-zero level difference decides alone). The values are sums of real costs only.
//
// NOTE: [Reduced-cost tolerance]
// An arc enters only if its reduced cost c + pi_s - pi_t is below -kRelTol * (|c| + |pi_s| + |pi_t|):
// a few ulps of the numbers it is computed from, so rounding noise never drives pivots (which could
// loop). The driver prices the full problem with the same test (violation_score), so "nothing enters
// here" and "nothing violates there" agree. Potentials are updated incrementally by each pivot and
// recomputed exactly from the tree (refresh_potentials) before the simplex declares itself done and
// every `nodes` pivots, so the rounding of a long run of updates never accumulates into them.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "emd/emd.h"

namespace pygan::emd {

constexpr double kRelTol = 64 * 2.220446049250313e-16;

// Negative iff the arc with cost c from a node of potential ps to one of potential pt may enter.
inline double violation_score(double c, double ps, double pt) {
  return (c + ps - pt) + kRelTol * (std::fabs(c) + std::fabs(ps) + std::fabs(pt));
}

// The same with symbolic big-M levels (NOTE: [Symbolic big-M]): a level difference dominates any
// value, so it maps to +-kBigScore times that difference.
constexpr double kBigScore = 1e300;
inline double violation_score(double c, double ps, double pt, int32_t level) {
  return level != 0 ? level * kBigScore : violation_score(c, ps, pt);
}

class TransportSimplex {
 public:
  // supply (n) and demand (m): positive masses with equal totals (up to rounding).
  TransportSimplex(int32_t n, int32_t m, const double* supply, const double* demand);

  void reserve(int64_t real_arcs) {
    const size_t total = static_cast<size_t>(nodes_ + real_arcs);
    src_.reserve(total);
    tgt_.reserve(total);
    cost_.reserve(total);
    flow_.reserve(total);
    in_tree_.reserve(total);
  }

  void add_arc(int32_t row, int32_t col, double cost) {
    if (implicit_from_ < kNoImplicit) store_endpoints();
    src_.push_back(row);
    tgt_.push_back(n_ + col);
    cost_.push_back(cost);
    flow_.push_back(0.0);
    in_tree_.push_back(0);
  }

  // Appends `count` real arcs (zero flow, outside the tree) for the caller to fill in: real arc
  // first + t runs from row src[t] to node tgt[t] (n + its column) at cost cost[t]. Written in
  // place, so a large first arc set is not staged and copied (the pointers stay valid while the
  // arcs fit in reserve()'s capacity).
  struct NewArcs {
    int64_t first;
    int32_t* src;
    int32_t* tgt;
    double* cost;
  };
  NewArcs append_arcs(int64_t count) {
    if (implicit_from_ < kNoImplicit) store_endpoints();
    const size_t at = cost_.size(), total = at + static_cast<size_t>(count);
    src_.resize(total);
    tgt_.resize(total);
    cost_.resize(total);
    flow_.resize(total, 0.0);
    in_tree_.resize(total, 0);
    return {static_cast<int64_t>(at) - nodes_, src_.data() + at, tgt_.data() + at, cost_.data() + at};
  }

  // NOTE: [Feasible start]
  // Replaces the big-M start tree by one built on `basis` (real arc indices, 0-based among the
  // real arcs): a forest, each of whose arcs can carry a clearly positive flow (a greedy or
  // north-west-corner fill where every step empties a row or a column yields exactly that). Each
  // forest component hangs off the root through one artificial arc: a row's (toward the root)
  // when the component's supply covers its demand, a column's otherwise, carrying the
  // component's rounding-sized imbalance. Flows are recomputed from the node masses, so they
  // balance exactly as the tree implies. Zero flow then sits only on artificial row arcs, which
  // point toward the root, so the tree is strongly feasible (NOTE: [Strongly feasible trees]).
  // Call before any pivot.
  void start_from_forest(const std::vector<int64_t>& basis);

  // Pivots until no arc of the current set enters, or until `max_pivots` (< 0: no limit) more
  // pivots were made. Adds the pivots made to `pivots`.
  Status run(int64_t max_pivots, int64_t& pivots);

  int32_t rows() const { return n_; }
  int32_t cols() const { return m_; }
  int64_t real_arcs() const { return static_cast<int64_t>(cost_.size()) - nodes_; }
  // Row r's potential is level(r) * M + pi(r), column c's level(n + c) * M + pi(n + c) (M symbolic):
  // reduced cost = cost + pi(r) - pi(n + c) when the levels agree.
  const double* potentials() const { return pi_.data(); }
  const int32_t* levels() const { return level_.data(); }
  // Recomputes every potential from the tree's arcs (exact up to one rounding per tree edge).
  void refresh_potentials();
  // Real arc k (0-based among the real arcs).
  int32_t arc_row(int64_t k) const { return src(nodes_ + k); }
  int32_t arc_col(int64_t k) const { return tgt(nodes_ + k) - n_; }
  double arc_cost(int64_t k) const { return cost_[nodes_ + k]; }
  double arc_flow(int64_t k) const { return flow_[nodes_ + k]; }
  // The real arcs of the spanning tree (0-based among the real arcs, in node order), at most
  // n + m of them: the only ones that can carry flow, since a non-tree arc sits at its lower
  // bound (a leaving arc's flow drops to exactly 0: it is the cycle's minimum, subtracted from
  // itself). The plan is read from these instead of a scan of every arc (128 x 128 complete:
  // 16384 flows, about 20 us of a 0.2 ms start).
  void tree_real_arcs(std::vector<int64_t>& out) const {
    out.clear();
    for (int32_t u = 0; u < nodes_; ++u)
      if (pred_[u] >= nodes_) out.push_back(int64_t(pred_[u]) - nodes_);
  }
  // The real arcs' costs, in arc order (arc_cost(k) == real_costs()[k]).
  const double* real_costs() const { return cost_.data() + nodes_; }
  // Adds a constant to every potential (reduced costs do not change) so that row 0's is zero: keeps
  // the big-M offset out of the duals when the root hangs off a column's artificial arc.
  void normalise_potentials() {
    const double shift = pi_[0];
    const int32_t lshift = level_[0];
    for (double& x : pi_) x -= shift;
    for (int32_t& l : level_) l -= lshift;
  }
  // NOTE: [Complete pricing]
  // A complete problem (every (row, column) pair an arc, transport.cpp) gets its arcs in one
  // block, row-major: real arc r * m + l is row r -> column l. add_complete_arcs() appends them
  // (flow 0) to a simplex that has no real arcs yet and returns where their n * m costs go, for
  // the caller to fill. use_complete_pricing() then switches the entering search to
  // find_entering_complete, which scans whole rows with a vectorised loop over the columns:
  // a row's costs and in-tree flags and the columns' potentials and levels (nodes n .. n + m - 1)
  // are contiguous, so no per-arc endpoint lookups or branches remain. It folds the level test
  // into the score (a level difference of d adds d * kBigScore, a tree arc 2 * kBigScore), which
  // orders arcs like find_entering only while every |score| stays far below kBigScore: hence the
  // bound on the costs (potentials are sums of at most n + m of them); above it, the general
  // search stays.
  double* add_complete_arcs();
  void use_complete_pricing(double max_abs_cost);
  // Artificial arc of node u (row u or column u - n) and the flow it still carries.
  double artificial_flow_of(int32_t u) const { return flow_[u]; }
  // Flow still routed through the root (zero for a solved, balanced problem; rounding aside).
  double artificial_flow() const;

 private:
  void build_forest(const std::vector<int64_t>& basis, const std::vector<double>& masses,
                    std::vector<int64_t>& bad);
  int64_t find_entering();
  int64_t find_entering_levels();  // the block search with the level test
  int64_t find_entering_keyed();   // the same once every node has one level (NOTE: [Keyed search])
  int64_t find_entering_complete();  // NOTE: [Complete pricing]
  bool pivot(int64_t in_arc);  // false: unbounded (no blocking arc; cannot happen with costs >= -inf)
  // The steps of a pivot (network_simplex.cpp).
  int32_t find_join(int32_t p, int32_t q) const;
  int32_t find_leaving(int32_t p, int32_t q, int32_t join, double& delta, bool& on_p_side) const;
  void push_flow(int64_t in_arc, int32_t p, int32_t q, int32_t join, double delta);
  void update_tree(int64_t in_arc, int32_t u_in, int32_t v_in, int32_t u_out, int32_t join, bool on_p_side);
  void shift_potentials(int32_t u_in, double sigma, int32_t lsigma);
  void check_tree() const;  // aborts on a broken invariant (PYGAN_EMD_CHECK_TREE builds only)

  int32_t n_, m_, nodes_, root_;
  // Arcs (artificial ones first).
  std::vector<int32_t> src_, tgt_;
  // Arcs from implicit_from_ on are the complete block (add_complete_arcs): arc nodes_ + r * m + l
  // runs row r -> column l, so their endpoints follow from the index and are not stored (8 bytes
  // an arc neither written nor read; 128 x 128: 128 KB). store_endpoints() writes them out where
  // the general search needs them (use_complete_pricing declining) or more arcs arrive.
  static constexpr int64_t kNoImplicit = INT64_MAX;
  int64_t implicit_from_ = kNoImplicit;
  int32_t src(int64_t e) const { return e < implicit_from_ ? src_[e] : int32_t((e - implicit_from_) / m_); }
  int32_t tgt(int64_t e) const { return e < implicit_from_ ? tgt_[e] : n_ + int32_t((e - implicit_from_) % m_); }
  void store_endpoints();
  std::vector<double> cost_, flow_;
  std::vector<uint8_t> in_tree_;
  // Spanning tree, per node (root included).
  std::vector<int32_t> parent_, pred_, thread_, rev_thread_, succ_num_, last_succ_;
  std::vector<uint8_t> up_;  // pred_ arc points from the node to its parent
  bool big(int64_t arc) const { return arc >= n_ && arc < nodes_; }  // root -> column: cost M
  std::vector<double> pi_;
  std::vector<int32_t> level_;
  int64_t next_arc_;
  int64_t since_refresh_ = 0;
  // Artificial arcs in the tree: big-M ones (root -> column) and free ones (row -> root). Every
  // artificial arc joins the root to a child, and a node's level is that of its ancestor at the
  // top: 1 below a big-M arc, 0 below a free one. So when either count is zero every real node
  // has the same level, and no real arc's level difference can be non-zero (uniform_levels()).
  // That is the common case, not only the end state: a first basis with one component and a net
  // mass rounded below zero hangs off the root by one big-M arc, which as the root's only arc
  // never leaves (3000 x 2000 clouds: one such arc through all 58472 pivots).
  int32_t big_in_tree_ = 0;
  int32_t free_in_tree_ = 0;
  bool uniform_levels() const { return big_in_tree_ == 0 || free_in_tree_ == 0; }
  std::vector<int32_t> dirty_;  // scratch for update_tree(): nodes whose thread successor changed
  // NOTE: [Complete pricing]: the flag, rows per block, the next row to scan and one row's keys.
  bool complete_ = false;
  int32_t block_rows_ = 1;
  int32_t next_row_ = 0;
  std::vector<double> row_key_;
  // Per real arc, the parts of its key that change only when it enters or leaves the tree:
  // c + kRelTol |c|, plus 2 * kBigScore while it is in the tree; the first keys_ready_ real arcs
  // have theirs (kept by set_arc_key(); the rest are computed by ensure_keys() before a search
  // that reads them, the whole list again after the tree is rebuilt).
  std::vector<double> arc_key_;
  int64_t keys_ready_ = 0;
  std::vector<double> col_key_;  // per search: the columns' part, kRelTol |pi_c| - pi_c
  std::vector<double> block_score_;  // find_entering_keyed: one stretch's scores
  double arc_key(size_t e) const {
    const double c = cost_[e];
    return c + kRelTol * std::fabs(c) + (in_tree_[e] ? 2 * kBigScore : 0.0);
  }
  void set_arc_key(size_t e) {
    if (e >= size_t(nodes_) && int64_t(e) - nodes_ < keys_ready_) arc_key_[e - nodes_] = arc_key(e);
  }
  void ensure_keys() {
    const int64_t count = real_arcs();
    if (keys_ready_ >= count) return;
    arc_key_.resize(size_t(count));
    for (int64_t k = keys_ready_; k < count; ++k) arc_key_[size_t(k)] = arc_key(size_t(nodes_ + k));
    keys_ready_ = count;
  }
};

}  // namespace pygan::emd
