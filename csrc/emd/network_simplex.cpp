// The pivots of TransportSimplex (see network_simplex.h for the representation and the NOTEs).
#include "emd/network_simplex.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace pygan::emd {

TransportSimplex::TransportSimplex(int32_t n, int32_t m, const double* supply, const double* demand)
    : n_(n), m_(m), nodes_(n + m), root_(n + m), next_arc_(n + m) {
  const int32_t N = nodes_;
  src_.resize(N);
  tgt_.resize(N);
  cost_.resize(N);
  flow_.resize(N);
  in_tree_.assign(N, 1);
  big_in_tree_ = m;  // every column hangs off the root by its big-M arc, every row by its free one
  free_in_tree_ = n;
  parent_.assign(N + 1, root_);
  pred_.resize(N + 1);
  succ_num_.assign(N + 1, 1);
  last_succ_.resize(N + 1);
  thread_.resize(N + 1);
  rev_thread_.resize(N + 1);
  up_.resize(N + 1);
  pi_.resize(N + 1);
  level_.assign(N + 1, 0);
  // The start tree: every node is a child of the root through its artificial arc, which carries
  // the node's whole mass (positive, so the tree is strongly feasible). Rows reach the root for
  // free, the root reaches columns at the symbolic cost M (NOTE: [Symbolic big-M]), so any real
  // arc prices out at first.
  for (int32_t u = 0; u < N; ++u) {
    const bool row = u < n;
    src_[u] = row ? u : root_;
    tgt_[u] = row ? root_ : u;
    cost_[u] = 0.0;  // the real part; big() adds M to the column arcs
    flow_[u] = row ? supply[u] : demand[u - n];
    pred_[u] = u;
    up_[u] = row;
    pi_[u] = 0.0;
    level_[u] = row ? 0 : 1;
    thread_[u] = u + 1;
    rev_thread_[u + 1] = u;
    last_succ_[u] = u;
  }
  parent_[root_] = -1;
  pred_[root_] = -1;
  succ_num_[root_] = N + 1;
  last_succ_[root_] = N > 0 ? N - 1 : root_;
  pi_[root_] = 0.0;
  thread_[root_] = N > 0 ? 0 : root_;
  rev_thread_[0] = root_;
  if (N == 0) rev_thread_[root_] = root_;
  else thread_[N - 1] = root_;
}

void TransportSimplex::start_from_forest(const std::vector<int64_t>& given) {
  // Node masses (rows +supply, columns -demand), still on the artificial arcs of the big-M tree.
  std::vector<double> masses(nodes_);
  for (int32_t u = 0; u < nodes_; ++u) masses[u] = u < n_ ? flow_[u] : -flow_[u];
  std::vector<int64_t> basis(given), bad;
  // An arc whose recomputed flow rounds to zero while it points away from the root would break
  // strong feasibility: drop it (its subtree becomes a component of its own) and build again.
  for (;;) {
    bad.clear();
    build_forest(basis, masses, bad);
    if (bad.empty()) break;
    // The dropped arcs leave the tree: build_forest resets only the artificial arcs' flags, and a
    // real arc still flagged would be skipped by every entering search from then on.
    for (const int64_t k : bad) in_tree_[nodes_ + k] = 0, flow_[nodes_ + k] = 0.0;
    std::sort(bad.begin(), bad.end());
    basis.erase(std::remove_if(basis.begin(), basis.end(),
                               [&](int64_t k) { return std::binary_search(bad.begin(), bad.end(), k); }),
                basis.end());
  }
  keys_ready_ = 0;  // the tree flags changed: every arc key is computed again before a search
  big_in_tree_ = free_in_tree_ = 0;  // the new tree's artificial arcs (pivots then keep the counts)
  for (int32_t u = 0; u < n_; ++u) free_in_tree_ += in_tree_[u];
  for (int32_t u = n_; u < nodes_; ++u) big_in_tree_ += in_tree_[u];
  refresh_potentials();
#ifdef PYGAN_EMD_CHECK_TREE
  check_tree();
#endif
}

void TransportSimplex::build_forest(const std::vector<int64_t>& basis, const std::vector<double>& masses,
                                    std::vector<int64_t>& bad) {
  const int32_t N = nodes_;
  std::vector<double> mass(masses);
  // Forest adjacency (CSR): node -> arcs.
  std::vector<int32_t> start(N + 1, 0), adj(2 * basis.size());
  for (const int64_t k : basis) ++start[src(nodes_ + k) + 1], ++start[tgt(nodes_ + k) + 1];
  for (int32_t u = 0; u < N; ++u) start[u + 1] += start[u];
  {
    std::vector<int32_t> fill(start.begin(), start.end() - 1);
    for (const int64_t k : basis) {
      const int32_t e = int32_t(nodes_ + k);
      adj[fill[src(e)]++] = e;
      adj[fill[tgt(e)]++] = e;
    }
  }
  for (int32_t u = 0; u < N; ++u) flow_[u] = 0.0, in_tree_[u] = 0;
  std::vector<int32_t> stack, comp;
  std::vector<uint8_t> seen(N, 0);
  int32_t last = root_;  // the thread so far: root, then each component's preorder
  for (int32_t s = 0; s < N; ++s) {
    if (seen[s]) continue;
    // The component of s and its net mass; the anchor follows the sign (see the NOTE).
    comp.clear();
    stack.assign(1, s);
    seen[s] = 1;
    double net = 0.0;
    int32_t a_row = -1, a_col = -1;
    while (!stack.empty()) {
      const int32_t u = stack.back();
      stack.pop_back();
      comp.push_back(u);
      net += mass[u];
      if (u < n_) { if (a_row < 0) a_row = u; } else if (a_col < 0) a_col = u;
      for (int32_t t = start[u]; t < start[u + 1]; ++t) {
        const int32_t e = adj[t], se = src(e), w = se == u ? tgt(e) : se;
        if (!seen[w]) seen[w] = 1, stack.push_back(w);
      }
    }
    const int32_t anchor = (net >= 0 && a_row >= 0) || a_col < 0 ? a_row : a_col;
    // Preorder DFS from the anchor: parent, pred, up, thread. (Children are claimed when pushed,
    // so each subtree is one contiguous run of `comp`.)
    for (const int32_t u : comp) seen[u] = 2;
    parent_[anchor] = root_;
    pred_[anchor] = anchor;  // its artificial arc
    up_[anchor] = anchor < n_;
    in_tree_[anchor] = 1;
    comp.clear();
    stack.assign(1, anchor);
    seen[anchor] = 3;
    while (!stack.empty()) {
      const int32_t u = stack.back();
      stack.pop_back();
      comp.push_back(u);
      thread_[last] = u;
      rev_thread_[u] = last;
      last = u;
      for (int32_t t = start[u]; t < start[u + 1]; ++t) {
        const int32_t e = adj[t], se = src(e), w = se == u ? tgt(e) : se;
        if (seen[w] == 3) continue;
        seen[w] = 3;
        parent_[w] = u;
        pred_[w] = e;
        up_[w] = src(e) == w;  // the arc runs w -> u (w a row)
        in_tree_[e] = 1;
        stack.push_back(w);
      }
    }
    // Flows and subtree sizes, leaves first: each arc carries the net mass of the subtree below it.
    for (const int32_t u : comp) succ_num_[u] = 1;
    for (size_t t = comp.size(); t-- > 0;) {
      const int32_t u = comp[t];
      if (u != anchor) succ_num_[parent_[u]] += succ_num_[u];
      const double below = mass[u];
      const int32_t e = pred_[u];
      double f = up_[u] ? below : -below;
      if (!(f > 0)) {
        f = 0.0;  // rounding of the masses
        if (!up_[u] && u != anchor) bad.push_back(e - nodes_);
      }
      flow_[e] = f;
      if (u != anchor) mass[parent_[u]] += mass[u];
    }
    for (size_t t = 0; t < comp.size(); ++t) last_succ_[comp[t]] = comp[t + succ_num_[comp[t]] - 1];
  }
  thread_[last] = root_;
  rev_thread_[root_] = last;
  succ_num_[root_] = N + 1;
  last_succ_[root_] = last;
}

void TransportSimplex::refresh_potentials() {
  // Preorder from the root: a parent's potential is always final before its children's.
  pi_[root_] = 0.0;
  level_[root_] = 0;
  for (int32_t w = thread_[root_]; w != root_; w = thread_[w]) {
    const int32_t par = parent_[w], e = pred_[w];
    const int32_t l = big(e) ? 1 : 0;
    if (up_[w]) {  // arc w -> parent: cost + pi(w) - pi(parent) == 0
      pi_[w] = pi_[par] - cost_[e];
      level_[w] = level_[par] - l;
    } else {       // arc parent -> w
      pi_[w] = pi_[par] + cost_[e];
      level_[w] = level_[par] + l;
    }
  }
  since_refresh_ = 0;
}

double TransportSimplex::artificial_flow() const {
  double total = 0.0;
  for (int32_t u = 0; u < nodes_; ++u) total += flow_[u];
  return total;
}

// Block search (as in LEMON and POT): scan the real arcs cyclically in blocks of about sqrt(#arcs)
// and take the most violating arc of the first block that has one.
int64_t TransportSimplex::find_entering() {
  ensure_keys();
  if (complete_) return find_entering_complete();
  if (implicit_from_ < kNoImplicit) store_endpoints();  // the block scan reads src_ and tgt_
  // With every real node on the same level (uniform_levels) the level test can never reject an
  // arc (2-D clouds, 20000 x 20000 on 2 threads: skipping its two lookups per arc took 18.5-19.4 s
  // to 17.1 s, the same 713513 pivots), and the keyed scan runs instead.
  return uniform_levels() ? find_entering_keyed() : find_entering_levels();
}

namespace {
int64_t block_size(int64_t count) {
  return std::min<int64_t>(count, std::max<int64_t>(16, std::llround(std::sqrt(double(count)))));
}
}  // namespace

int64_t TransportSimplex::find_entering_levels() {
  const int64_t first = nodes_, end = static_cast<int64_t>(cost_.size());
  const int64_t count = end - first;
  if (count <= 0) return -1;
  const int64_t block = block_size(count);
  int64_t e = std::clamp(next_arc_, first, end - 1);
  int64_t best = -1;
  // Lexicographic (NOTE: [Symbolic big-M]): a lower level difference wins, then a lower score;
  // (0, 0) is the bar an arc must beat to enter.
  int32_t best_level = 0;
  double best_score = 0.0;
  const double* pi = pi_.data();
  const int32_t* lv = level_.data();
  int64_t scanned = 0, in_block = 0;
  while (scanned < count) {
    const int64_t len = std::min({block - in_block, end - e, count - scanned});
    for (int64_t k = e; k < e + len; ++k) {
      const int32_t sk = src_[k], tk = tgt_[k];
      const int32_t l = lv[sk] - lv[tk];
      if (l > best_level) continue;
      const double s = violation_score(cost_[k], pi[sk], pi[tk]);
      if ((l < best_level || s < best_score) && !in_tree_[k]) {
        best_level = l;
        best_score = s;
        best = k;
      }
    }
    e += len;
    scanned += len;
    in_block += len;
    if (e == end) e = first;
    if (in_block == block) {
      if (best >= 0) break;
      in_block = 0;
    }
  }
  next_arc_ = e;
  return best;
}

// NOTE: [Keyed search]
// find_entering's block rule when every node has one level, as a vectorised pass: an arc's score
// is its key (arc_key_: c + kRelTol |c|, 2 kBigScore more in the tree) plus its tail's part,
// pi_s + kRelTol |pi_s|, plus its head's, kRelTol |pi_t| - pi_t: violation_score's terms summed
// in another order (a few ulps apart, against its tolerance of 64), with the tree test folded in,
// so a stretch of the block is one loop of gathers, adds and a min, no branch per arc. The first
// arc with the stretch's lowest score is then found in the stored scores.
int64_t TransportSimplex::find_entering_keyed() {
  const int64_t first = nodes_, end = static_cast<int64_t>(cost_.size());
  const int64_t count = end - first;
  if (count <= 0) return -1;
  const int64_t block = block_size(count);
  if (int64_t(block_score_.size()) < block) block_score_.resize(size_t(block));
  int64_t e = std::clamp(next_arc_, first, end - 1);
  int64_t best = -1;
  double best_score = 0.0;  // the bar an arc must beat to enter
  const double* pi = pi_.data();
  const int32_t* src = src_.data();
  const int32_t* tgt = tgt_.data();
  const double* key = arc_key_.data();  // real arc k - first
  double* score = block_score_.data();
  const double inf = std::numeric_limits<double>::infinity();
  int64_t scanned = 0, in_block = 0;
  while (scanned < count) {
    const int64_t len = std::min({block - in_block, end - e, count - scanned});
    const int32_t* sk = src + e;
    const int32_t* tk = tgt + e;
    const double* ak = key + (e - first);
    double lowest = inf;
#pragma omp simd reduction(min : lowest)
    for (int64_t t = 0; t < len; ++t) {
      const double ps = pi[sk[t]], pt = pi[tk[t]];
      const double sc = (ak[t] + (ps + kRelTol * std::fabs(ps))) + (kRelTol * std::fabs(pt) - pt);
      score[t] = sc;
      lowest = std::min(lowest, sc);
    }
    if (lowest < best_score) {
      int64_t t = 0;
      while (score[t] != lowest) ++t;
      best_score = lowest;
      best = e + t;
    }
    e += len;
    scanned += len;
    in_block += len;
    if (e == end) e = first;
    if (in_block == block) {
      if (best >= 0) break;
      in_block = 0;
    }
  }
  next_arc_ = e;
  return best;
}

double* TransportSimplex::add_complete_arcs() {
  const size_t first = size_t(nodes_), total = first + size_t(n_) * m_;
  cost_.resize(total);
  flow_.resize(total, 0.0);
  in_tree_.resize(total, 0);
  implicit_from_ = int64_t(first);  // endpoints from the index: src(), tgt()
  return cost_.data() + first;
}

void TransportSimplex::store_endpoints() {
  const int64_t first = implicit_from_, total = int64_t(cost_.size());
  if (first >= total) {
    implicit_from_ = kNoImplicit;
    return;
  }
  src_.resize(size_t(total));
  tgt_.resize(size_t(total));
  for (int64_t e = first; e < total; ++e) src_[e] = src(e), tgt_[e] = tgt(e);
  implicit_from_ = kNoImplicit;
}

void TransportSimplex::use_complete_pricing(double max_abs_cost) {
  complete_ = real_arcs() == int64_t(n_) * m_ && max_abs_cost * 4.0 * (nodes_ + 1) < 1e-4 * kBigScore;
  if (!complete_) {
    store_endpoints();  // the general search reads them
    return;
  }
  // Twice find_entering's block: a vectorised scan costs less per arc, and the better entering
  // arcs of the larger block save more pivots than the extra scanning costs (2-D clouds, random
  // weights, squared Euclidean costs, one process alternating: 128 x 128 from 807 to 688 pivots
  // and 6-7% of the time; 64 x 64 from 319 to 292 pivots, the same time; 3x: 661 / 262 pivots,
  // 128 x 128 back to the 1x time). Computed once here, not per search (lround and a division
  // were 8% of the search at 64 x 64).
  const int64_t block = std::max<int64_t>(16, std::llround(std::sqrt(double(n_) * m_)));
  block_rows_ = int32_t(std::max<int64_t>(1, (2 * block + m_ / 2) / m_));
  row_key_.resize(m_);
  col_key_.resize(m_);
  ensure_keys();
}

// NOTE: [Complete pricing]: find_entering's block rule over whole rows (a block of about
// 2 sqrt(n m) arcs, rounded to whole rows; the first block with a candidate gives its best), each
// row's keys computed in one vectorised pass. The key folds find_entering's lexicographic
// (level, score) order into one double, score + (level difference) * kBigScore, and adds
// 2 * kBigScore on tree arcs: their levels agree (real arcs never change the level) and their
// reduced cost is zero only up to the rounding of incremental potential updates, which can exceed
// the tolerance, so the tolerance alone would not keep them out; the flag does, without a branch.
// With |score| far below kBigScore (use_complete_pricing's bound) an arc's key is negative exactly
// when find_entering would take it (up to a few ulps of its terms: the sum is taken in another
// order, against a tolerance of 64 ulps). The key's parts are kept where they change: per arc
// c + kRelTol |c| plus the tree flag's 2 kBigScore (arc_key_, rewritten when the arc enters or
// leaves the tree), per column kRelTol |pi_c| - pi_c (once per search), per row pi_r + kRelTol
// |pi_r|; the level term only while a big-M arc is in the tree. A row's pass is then two loads,
// two adds, a store and a min per arc, where it was six loads and conversions, three absolute
// values and a multiply-add (2-D clouds with random weights, alternating builds, the same pivots:
// 64 x 64 139 -> 131 us, 128 x 128 608 -> 569 us, medians of 5 processes each on AVX2).
int64_t TransportSimplex::find_entering_complete() {
  const int32_t n = n_, m = m_;
  if (n == 0 || m == 0) return -1;
  const int32_t rows_per_block = block_rows_;
  double* key = row_key_.data();
  double* ck = col_key_.data();
  const double* pcol = pi_.data() + n;
  const int32_t* lcol = level_.data() + n;
  const double* arc_key = arc_key_.data();
  const double inf = std::numeric_limits<double>::infinity();
  // The columns' share of every key, once per search (O(m), against O(m) per row scanned).
#pragma omp simd
  for (int32_t l = 0; l < m; ++l) ck[l] = kRelTol * std::fabs(pcol[l]) - pcol[l];
  // With every real node on the same level: no level term at all.
  const bool levels = !uniform_levels();
  int32_t r = next_row_ < n ? next_row_ : 0;
  int64_t best = -1;
  double best_key = 0.0;  // the bar: an arc enters only with a negative key
  for (int32_t scanned = 0; scanned < n;) {
    for (int32_t t = 0; t < rows_per_block && scanned < n; ++t, ++scanned) {
      const double* ak = arc_key + int64_t(r) * m;
      const double rk = pi_[r] + kRelTol * std::fabs(pi_[r]);
      double row_min = inf;
      if (levels) {
        const int32_t lr = level_[r];
#pragma omp simd reduction(min : row_min)
        for (int32_t l = 0; l < m; ++l) {
          const double k = ((ak[l] + ck[l]) + rk) + double(lr - lcol[l]) * kBigScore;
          key[l] = k;
          row_min = std::min(row_min, k);
        }
      } else {
#pragma omp simd reduction(min : row_min)
        for (int32_t l = 0; l < m; ++l) {
          const double k = (ak[l] + ck[l]) + rk;
          key[l] = k;
          row_min = std::min(row_min, k);
        }
      }
      if (row_min < best_key) {
        int32_t at = 0;
        while (key[at] != row_min) ++at;
        best_key = row_min;
        best = int64_t(r) * m + at;
      }
      r = r + 1 == n ? 0 : r + 1;
    }
    if (best >= 0) break;
  }
  next_row_ = r;
  return best < 0 ? -1 : nodes_ + best;
}

// The apex of the cycle formed by the entering arc p -> q and the tree paths from p and q.
int32_t TransportSimplex::find_join(int32_t p, int32_t q) const {
  // The node with the smaller subtree cannot be an ancestor of the other: climb from it. The
  // root's subtree is the largest, so the climb ends.
  int32_t x = p, y = q;
  while (x != y) {
    if (succ_num_[x] < succ_num_[y]) x = parent_[x];
    else y = parent_[y];
  }
  return x;
}

// Flow moves along p -> q, up from q to the apex, down from the apex to p. A tree arc blocks
// when that direction opposes it; the leaving arc is the last blocking arc in the cycle's
// orientation (NOTE: [Strongly feasible trees]). Returns the node below it (-1: none blocks),
// with the flow change and the side of the cycle it lies on.
int32_t TransportSimplex::find_leaving(int32_t p, int32_t q, int32_t join, double& delta, bool& on_p_side) const {
  delta = std::numeric_limits<double>::infinity();
  int32_t u_out = -1;
  on_p_side = false;
  for (int32_t u = p; u != join; u = parent_[u]) {
    if (up_[u] && flow_[pred_[u]] < delta) {
      delta = flow_[pred_[u]];
      u_out = u;
      on_p_side = true;
    }
  }
  for (int32_t u = q; u != join; u = parent_[u]) {
    if (!up_[u] && flow_[pred_[u]] <= delta) {
      delta = flow_[pred_[u]];
      u_out = u;
      on_p_side = false;
    }
  }
  return u_out;
}

void TransportSimplex::push_flow(int64_t in_arc, int32_t p, int32_t q, int32_t join, double delta) {
  if (!(delta > 0)) return;
  flow_[in_arc] += delta;
  for (int32_t u = p; u != join; u = parent_[u]) flow_[pred_[u]] += up_[u] ? -delta : delta;
  for (int32_t u = q; u != join; u = parent_[u]) flow_[pred_[u]] += up_[u] ? delta : -delta;
}

// Moves the subtree T below u_out so that it hangs from v_in through the entering arc, re-rooted at
// u_in (NOTE: [Tree representation]; the steps follow LEMON's updateTreeStructure). The stem is the
// path u_in = s_0, s_1 = parent(s_0), ..., s_k = u_out: its parent links are reversed. T's new
// preorder is s_0's old subtree, then s_1's minus s_0's, and so on; each of these is one thread
// segment (from s_i to the node before s_{i-1}'s segment, or to last_succ(s_i) when s_{i-1}'s
// segment was the last part of s_i's), so the splice costs O(stem), not O(|T|).
void TransportSimplex::update_tree(int64_t in_arc, int32_t u_in, int32_t v_in, int32_t u_out, int32_t join,
                                   bool on_p_side) {
  int32_t* parent = parent_.data();
  int32_t* pred = pred_.data();
  int32_t* thread = thread_.data();
  int32_t* rev = rev_thread_.data();
  int32_t* succ_num = succ_num_.data();
  int32_t* last_succ = last_succ_.data();
  uint8_t* up = up_.data();
  const int32_t old_rev_thread = rev[u_out];
  const int32_t old_succ_num = succ_num[u_out];
  const int32_t old_last_succ = last_succ[u_out];
  const int32_t v_out = parent[u_out];

  if (u_in == u_out) {
    // T keeps its shape: relink its segment after v_in.
    parent[u_in] = v_in;
    pred[u_in] = static_cast<int32_t>(in_arc);
    up[u_in] = on_p_side;  // the arc runs p -> q: from u_in to its new parent iff u_in == p
    if (thread[v_in] != u_out) {
      int32_t after = thread[old_last_succ];
      thread[old_rev_thread] = after;
      rev[after] = old_rev_thread;
      after = thread[v_in];
      thread[v_in] = u_out;
      rev[u_out] = v_in;
      thread[old_last_succ] = after;
      rev[after] = old_last_succ;
    }
  } else {
    // When T's segment directly follows v_in (then v_out is the apex), what follows T is kept.
    const int32_t thread_continue = old_rev_thread == v_in ? thread[old_last_succ] : thread[v_in];
    int32_t stem = u_in, par_stem = v_in;
    int32_t last = last_succ[u_in];
    int32_t after = thread[last];
    thread[v_in] = u_in;
    dirty_.clear();
    dirty_.push_back(v_in);
    while (stem != u_out) {
      const int32_t next_stem = parent[stem];
      // The next stem node follows the current segment; the current one leaves its old place.
      thread[last] = next_stem;
      dirty_.push_back(last);
      const int32_t before = rev[stem];
      thread[before] = after;
      rev[after] = before;
      parent[stem] = par_stem;
      par_stem = stem;
      stem = next_stem;
      last = last_succ[stem] == last_succ[par_stem] ? rev[par_stem] : last_succ[stem];
      after = thread[last];
    }
    parent[u_out] = par_stem;
    thread[last] = thread_continue;
    rev[thread_continue] = last;
    last_succ[u_out] = last;
    if (old_rev_thread != v_in) {
      thread[old_rev_thread] = after;
      rev[after] = old_rev_thread;
    }
    for (const int32_t u : dirty_) rev[thread[u]] = u;
    // Down the reversed stem from u_out: each node takes over the arc below it; subtree sizes and
    // last nodes follow.
    int32_t sizes = 0;
    const int32_t ls = last_succ[u_out];
    for (int32_t u = u_out, w = parent[u]; u != u_in; u = w, w = parent[u]) {
      pred[u] = pred[w];
      up[u] = !up[w];
      sizes += succ_num[u] - succ_num[w];
      succ_num[u] = sizes;
      last_succ[w] = ls;
    }
    pred[u_in] = static_cast<int32_t>(in_arc);
    up[u_in] = on_p_side;
    succ_num[u_in] = old_succ_num;
  }

  // last_succ on the paths from v_in and from v_out up toward the apex (and beyond it, where the
  // moved segment was or became the end of an ancestor's subtree).
  const int32_t up_limit_out = last_succ[join] == v_in ? join : -1;
  const int32_t last_succ_out = last_succ[u_out];
  for (int32_t u = v_in; u != -1 && last_succ[u] == v_in; u = parent[u]) last_succ[u] = last_succ_out;
  if (join != old_rev_thread && v_in != old_rev_thread) {
    for (int32_t u = v_out; u != up_limit_out && last_succ[u] == old_last_succ; u = parent[u])
      last_succ[u] = old_rev_thread;
  } else if (last_succ_out != old_last_succ) {
    for (int32_t u = v_out; u != up_limit_out && last_succ[u] == old_last_succ; u = parent[u])
      last_succ[u] = last_succ_out;
  }
  for (int32_t u = v_in; u != join; u = parent[u]) succ_num[u] += old_succ_num;
  for (int32_t u = v_out; u != join; u = parent[u]) succ_num[u] -= old_succ_num;
}

// After update_tree: T is the thread segment u_in .. last_succ(u_in). Shifts T's potentials by
// (lsigma, sigma), or the rest's by the opposite when that side is smaller.
void TransportSimplex::shift_potentials(int32_t u_in, double sigma, int32_t lsigma) {
  const int32_t* thread = thread_.data();
  double* pi = pi_.data();
  int32_t* level = level_.data();
  int32_t first = u_in, end = thread[last_succ_[u_in]];
  if (2 * int64_t(succ_num_[u_in]) > int64_t(nodes_) + 1) std::swap(first, end), sigma = -sigma, lsigma = -lsigma;
  // Once no big-M arc is left in the cycle (most pivots), the levels stay: skip their stream.
  if (lsigma == 0) {
    for (int32_t u = first; u != end; u = thread[u]) pi[u] += sigma;
  } else {
    for (int32_t u = first; u != end; u = thread[u]) pi[u] += sigma, level[u] += lsigma;
  }
}

// Every invariant of NOTE: [Tree representation], checked from scratch (tests of the tree code).
void TransportSimplex::check_tree() const {
  const int32_t N = nodes_ + 1;
  auto fail = [](const char* what, int32_t u) {
    std::fprintf(stderr, "pygan emd: tree invariant broken: %s at node %d\n", what, u);
    std::abort();
  };
  std::vector<int32_t> pos(N, -1), size(N, 1);
  int32_t u = root_;
  for (int32_t t = 0; t < N; ++t, u = thread_[u]) {
    if (pos[u] >= 0) fail("thread revisits", u);
    pos[u] = t;
    if (rev_thread_[thread_[u]] != u) fail("rev_thread", u);
  }
  if (u != root_) fail("thread is not one cycle", u);
  int32_t big_arcs = 0;
  for (int32_t c = n_; c < nodes_; ++c) big_arcs += in_tree_[c];
  if (big_arcs != big_in_tree_) fail("big-M arcs in the tree miscounted", big_arcs);
  int32_t free_arcs = 0;
  for (int32_t r = 0; r < n_; ++r) free_arcs += in_tree_[r];
  if (free_arcs != free_in_tree_) fail("free artificial arcs in the tree miscounted", free_arcs);
  if (uniform_levels())  // what find_entering relies on to skip the level test
    for (int32_t w = 1; w < nodes_; ++w)
      if (level_[w] != level_[0]) fail("levels differ with uniform_levels()", w);
  for (int32_t w = 0; w < N; ++w) {
    if (w == root_) continue;
    const int32_t par = parent_[w], e = pred_[w];
    if (pos[par] >= pos[w]) fail("parent after child in thread", w);
    if (!in_tree_[e]) fail("pred arc not in tree", w);
    const bool from_w = src(e) == w && tgt(e) == par, to_w = src(e) == par && tgt(e) == w;
    if (!(from_w || to_w) || bool(up_[w]) != from_w) fail("pred/up", w);
  }
  // Flow only on tree arcs (the plan is read from them: tree_real_arcs()), and exactly the pred
  // arcs flagged as in the tree (a stray flag would keep an arc out of every entering search).
  int32_t flagged = 0;
  for (size_t e = 0; e < cost_.size(); ++e) {
    flagged += in_tree_[e];
    if (e >= size_t(nodes_) && !in_tree_[e] && flow_[e] != 0.0) fail("flow on a non-tree arc", int32_t(e - nodes_));
  }
  if (flagged != nodes_) fail("arcs flagged in the tree != nodes", flagged);
  for (int64_t k = 0; k < keys_ready_; ++k)
    if (arc_key_[size_t(k)] != arc_key(size_t(nodes_ + k))) fail("arc key stale", int32_t(k));
  // Subtree sizes by reverse thread order (children after parents).
  std::vector<int32_t> order(N);
  for (int32_t w = 0; w < N; ++w) order[pos[w]] = w;
  for (int32_t t = N - 1; t > 0; --t) size[parent_[order[t]]] += size[order[t]];
  for (int32_t w = 0; w < N; ++w) {
    if (succ_num_[w] != size[w]) fail("succ_num", w);
    if (pos[w] + size[w] - 1 >= N || order[pos[w] + size[w] - 1] != last_succ_[w]) fail("last_succ", w);
  }
  // Contiguity: each node's parent is within the parent's segment.
  for (int32_t w = 0; w < N; ++w)
    if (w != root_ && pos[w] > pos[parent_[w]] + size[parent_[w]] - 1) fail("subtree not contiguous", w);
}

bool TransportSimplex::pivot(int64_t in_arc) {
  const int32_t p = src(in_arc), q = tgt(in_arc);
  const int32_t join = find_join(p, q);
  double delta;
  bool on_p_side;
  const int32_t u_out = find_leaving(p, q, join, delta, on_p_side);
  if (u_out < 0) return false;
  push_flow(in_arc, p, q, join, delta);
  const int32_t out_arc = pred_[u_out];
  flow_[out_arc] = 0.0;
  in_tree_[out_arc] = 0;
  big_in_tree_ -= big(out_arc);  // the entering arc is real
  free_in_tree_ -= out_arc < n_;
  in_tree_[in_arc] = 1;
  set_arc_key(size_t(out_arc));
  set_arc_key(size_t(in_arc));
  const int32_t u_in = on_p_side ? p : q, v_in = on_p_side ? q : p;
  // Shift of T's potentials that makes the entering arc's reduced cost zero.
  const double c = cost_[in_arc];
  const double sigma = on_p_side ? pi_[q] - c - pi_[p] : c + pi_[p] - pi_[q];
  const int32_t lsigma = on_p_side ? level_[q] - level_[p] : level_[p] - level_[q];
  update_tree(in_arc, u_in, v_in, u_out, join, on_p_side);
  shift_potentials(u_in, sigma, lsigma);
#ifdef PYGAN_EMD_CHECK_TREE
  check_tree();
#endif
  return true;
}

Status TransportSimplex::run(int64_t max_pivots, int64_t& pivots) {
  for (int64_t done = 0;; ++done) {
    if (since_refresh_ >= nodes_) refresh_potentials();
    int64_t in_arc = find_entering();
    if (in_arc < 0 && since_refresh_ > 0) {
      // Done by the incrementally updated potentials: confirm with exact ones.
      refresh_potentials();
      in_arc = find_entering();
    }
    if (in_arc < 0) return Status::Optimal;
    if (max_pivots >= 0 && done >= max_pivots) return Status::IterationLimit;
    if (!pivot(in_arc)) return Status::Unbounded;
    ++pivots;
    ++since_refresh_;
  }
}

}  // namespace pygan::emd
