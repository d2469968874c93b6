"""Pure image-quality maths (no I/O, no models): SSIM family, NSS features, NIQE, BRISQUE.

Kept apart from the metric classes so each formula can be tested against its reference
implementation on arrays alone.
"""
