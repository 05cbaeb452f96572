"""Reproductions of the source papers' experiments, one command each (``python -m pygan experiment NAME``).

* ``clipping-vs-gp`` (:mod:`pygan.experiments.clipping_vs_gp`): WGAN-GP §3 / Figure 1, weight clipping
  against the gradient penalty: weight histograms, per-layer gradient norms of a deep critic, value
  surfaces.
* ``w-vs-js`` (:mod:`pygan.experiments.w_vs_js`): the parallel segments, exact W1 = |θ| against JS and
  KL estimated from samples.

Both are deterministic given ``--seed``, refuse an output directory holding a previous result unless
``--force``, and write ``report.json`` (strict JSON) and PNG pictures atomically. See docs/experiments.md.
"""

EXPERIMENTS = ("clipping-vs-gp", "w-vs-js")

__all__ = ["EXPERIMENTS"]
