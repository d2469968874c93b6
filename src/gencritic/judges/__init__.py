"""Vision-language judges: structured critique beside a profile's rules (:mod:`.critique`), and
pairwise judging of 3D generators with Bradley–Terry/Elo ratings (:mod:`.judge3d`, :mod:`.ratings`).
VQAScore, the VLM metric, lives with the other metrics (:mod:`gencritic.metrics.vlm`)."""
