"""From a score to an action plan: analysers, profiles, rules, calibration and a loop archive.

Entry points: :func:`gencritic.diagnose.api.diagnose` (one image or frame sequence -> JSON-able
dict) and :func:`gencritic.diagnose.profiles.list_profiles`. Everything that needs no model
works with no model; CLIP probes are added only when a model is given.
"""
