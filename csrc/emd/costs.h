// Internal pieces of the dense/points solver shared by its strategy files (transport.cpp,
// assignment.cpp, certificate.cpp): cost rows computed on the fly, and a bounded max-heap.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "emd/emd.h"

namespace pygan::emd {

// One row of costs at a time: the matrix row itself, or computed from the points into a buffer.
class CostRows {
 public:
  CostRows(const Costs& costs, int64_t m) : c_(costs), m_(m) {}

  const double* row(int64_t i, double* buffer) const {
    if (c_.matrix) return c_.matrix + i * m_;
    const int64_t d = c_.dim;
    const double* xi = c_.x + i * d;
    const double* y = c_.y;
    if (d == 2) {  // the common case, written so that the loop vectorises
      const double x0 = xi[0], x1 = xi[1];
      for (int64_t j = 0; j < m_; ++j) {
        const double d0 = x0 - y[2 * j], d1 = x1 - y[2 * j + 1];
        buffer[j] = d0 * d0 + d1 * d1;
      }
    } else {
      for (int64_t j = 0; j < m_; ++j) {
        double s = 0.0;
        for (int64_t k = 0; k < d; ++k) {
          const double t = xi[k] - y[j * d + k];
          s += t * t;
        }
        buffer[j] = s;
      }
    }
    finish(buffer);
    if (c_.metric != Metric::SqEuclidean) {
      // Finite points whose squared distance overflows (coordinates above ~1e154): the distance
      // itself may still be finite, so recompute those pairs with scaling.
      for (int64_t j = 0; j < m_; ++j)
        if (std::isinf(buffer[j])) buffer[j] = scaled(i, j);
    }
    return buffer;
  }

  double at(int64_t i, int64_t j) const {
    if (c_.matrix) return c_.matrix[i * m_ + j];
    double s = 0.0;
    for (int64_t k = 0; k < c_.dim; ++k) {
      const double t = c_.x[i * c_.dim + k] - c_.y[j * c_.dim + k];
      s += t * t;
    }
    const double c = metric(s);
    return std::isinf(c) && c_.metric != Metric::SqEuclidean ? scaled(i, j) : c;
  }

 private:
  // ||x_i - y_j||^p computed as s * ||(x_i - y_j) / s||, s = the largest |coordinate difference|.
  double scaled(int64_t i, int64_t j) const {
    const double* xi = c_.x + i * c_.dim;
    const double* yj = c_.y + j * c_.dim;
    double s = 0.0;
    for (int64_t k = 0; k < c_.dim; ++k) s = std::max(s, std::fabs(xi[k] - yj[k]));
    if (!(s > 0) || std::isinf(s)) return s;
    double t = 0.0;
    for (int64_t k = 0; k < c_.dim; ++k) {
      const double d = (xi[k] - yj[k]) / s;
      t += d * d;
    }
    const double norm = s * std::sqrt(t);
    return c_.metric == Metric::Euclidean ? norm : std::pow(norm, c_.p);
  }

  double metric(double sq) const {
    switch (c_.metric) {
      case Metric::SqEuclidean: return sq;
      case Metric::Euclidean: return std::sqrt(sq);
      case Metric::Power: return std::pow(sq, 0.5 * c_.p);
    }
    return sq;
  }
  void finish(double* buffer) const {  // squared distances -> costs, one metric branch per row
    if (c_.metric == Metric::Euclidean) {
      for (int64_t j = 0; j < m_; ++j) buffer[j] = std::sqrt(buffer[j]);
    } else if (c_.metric == Metric::Power) {
      const double half_p = 0.5 * c_.p;
      for (int64_t j = 0; j < m_; ++j) buffer[j] = std::pow(buffer[j], half_p);
    }
  }

  const Costs& c_;
  int64_t m_;
};

// The metric applied to a squared distance (or to a distance), with the metric fixed at compile
// time so that loops over many pairs vectorise (SqEuclidean and Euclidean; Power calls pow).
// Rounds exactly as CostRows does.
template <Metric kMetric>
inline double cost_from_square(double sq, double p) {
  if constexpr (kMetric == Metric::SqEuclidean) return sq;
  else if constexpr (kMetric == Metric::Euclidean) return std::sqrt(sq);
  else return std::pow(sq, 0.5 * p);
}
template <Metric kMetric>
inline double cost_from_distance(double dist, double p) {
  if constexpr (kMetric == Metric::SqEuclidean) return dist * dist;
  else if constexpr (kMetric == Metric::Euclidean) return dist;
  else return std::pow(dist, p);
}

// The k smallest keys seen, with their indices: a binary max-heap on key (worst at [0]), so a
// push costs O(log k). Callers may keep `size` between pushes and rebuild the view from it.
struct SmallestK {
  double* key;
  int32_t* idx;
  int32_t k, size = 0;
  void push(double value, int32_t index) {
    if (size < k) {  // sift up
      int32_t at = size++;
      while (at > 0) {
        const int32_t up = (at - 1) / 2;
        if (!(key[up] < value)) break;
        key[at] = key[up];
        idx[at] = idx[up];
        at = up;
      }
      key[at] = value;
      idx[at] = index;
      return;
    }
    if (!(value < key[0])) return;
    int32_t at = 0;  // replace the worst, sift down
    for (;;) {
      const int32_t left = 2 * at + 1;
      if (left >= size) break;
      const int32_t child = (left + 1 < size && key[left + 1] > key[left]) ? left + 1 : left;
      if (!(key[child] > value)) break;
      key[at] = key[child];
      idx[at] = idx[child];
      at = child;
    }
    key[at] = value;
    idx[at] = index;
  }
  double threshold() const { return size < k ? std::numeric_limits<double>::infinity() : key[0]; }
};

}  // namespace pygan::emd
