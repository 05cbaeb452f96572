"""Exact discrete optimal transport (Earth Mover's Distance), POT-compatible names.

The solver (csrc/emd/, see docs/ot.md) is a network simplex in float64 on CPU threads; inputs may
be numpy arrays or torch tensors on any device and in any floating dtype, and results come back in
the input's kind, device and dtype. Conventions (docs/ot.md):

- ``EMD(a, b, M) = min <P, M>`` over plans ``P >= 0`` with row sums ``a`` and column sums ``b``.
- ``a``/``b`` of None (or empty, as POT allows) mean uniform weights. Totals must agree to
  ``mass_tol`` (relative); within it, ``b`` is rescaled to ``sum(a)``. ``rescale=True`` accepts
  any positive totals and rescales ``b`` the same way.
- Duals ``u``, ``v`` satisfy ``u_i + v_j <= M_ij`` for *every* pair (zero-weight rows and columns
  included) with equality on the plan's support, and are centred like POT's: ``a.u == b.v``.
- Gradients (envelope theorem): ``d emd2 / dM = P``, ``/ da = u - mean(u)``, ``/ db = v - mean(v)``
  (POT's convention); for
  ``emd2_points``, ``d / dx_i = sum_j P_ij d c(x_i, y_j) / dx_i``.

Layout (as POT's ``ot/lp/``): ``dense`` (emd, emd2), ``points`` (emd2_points), ``solver_1d``
(wasserstein_1d), ``certificate`` (check_optimality), ``reference`` (the plain oracle solvers).
"""

from __future__ import annotations

from pygan.ot import reference
from pygan.ot._solve import STATUS, ImpreciseWarning, IterationLimitWarning
from pygan.ot.certificate import Certificate, check_optimality
from pygan.ot.dense import emd, emd2
from pygan.ot.points import emd2_points
from pygan.ot.solver_1d import emd2_1d, emd_1d, wasserstein_1d

__all__ = ["emd", "emd2", "emd2_points", "wasserstein_1d", "emd_1d", "emd2_1d", "check_optimality",
           "Certificate", "IterationLimitWarning", "ImpreciseWarning", "STATUS", "reference"]
