"""Meta-evaluation: how well metrics agree with people (correlations, splits, trained heads)."""
