"""``gencritic compare3d``: generated 3D assets against reference assets, one row per pair.

:mod:`.pairs` turns what the user gives (two folders paired by name, a manifest with
``generated`` and ``reference`` columns, or two files) into :class:`~.pairs.Pair` s;
:mod:`.evaluators` holds the column groups a row is made of (today: geometry; render-based
appearance columns plug in beside it as another :class:`~.evaluators.PairEvaluator`); :mod:`.run`
runs them over the pairs and writes ``results.csv`` and ``summary.json`` (and ``views.csv``
when an evaluator gives per-view values).
"""
