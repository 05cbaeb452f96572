// Small pieces shared by the dense/points solver (transport.cpp) and the sparse one (sparse.cpp).
#pragma once

#include <cstdint>
#include <vector>

namespace pygan::emd {

// Centres the duals as POT's center_ot_dual does: u += s, v -= s with s chosen so that a.u == b.v
// (the objective a.u + b.v is unchanged). b_scaled is b rescaled to sum(a); the total mass is
// sum_a on each side, hence the 2 * sum_a.
inline void center_duals(int64_t n, int64_t m, const double* a, const double* b_scaled, double sum_a,
                         std::vector<double>& u, std::vector<double>& v) {
  double au = 0.0, bv = 0.0;
  for (int64_t i = 0; i < n; ++i) au += a[i] * u[i];
  for (int64_t j = 0; j < m; ++j) bv += b_scaled[j] * v[j];
  const double shift = (bv - au) / (sum_a + sum_a);
  for (double& x : u) x += shift;
  for (double& x : v) x -= shift;
}

}  // namespace pygan::emd
