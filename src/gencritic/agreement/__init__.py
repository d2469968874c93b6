"""Agreement with people: how well metrics agree with human ratings (correlations with
bootstrap intervals, content-isolated splits, validation runs) and training assessment heads
on those ratings. The trained-head model itself lives in :mod:`gencritic.models.assessment_heads`,
so the ``learned`` metric loads it without importing this package."""
