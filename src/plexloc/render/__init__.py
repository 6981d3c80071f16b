"""Images, resolution and reports from localization tables: histogram/Gaussian rendering, colour by z or
channel, 16-bit TIFF and PNG files with a scale bar, Fourier ring correlation, the HTML report.

matplotlib is imported only inside the functions that draw figures.
"""

from plexloc.render.frc import FRCResult, expected_frc_resolution, frc
from plexloc.render.image import Rendered, render, render_color, render_gaussian, render_histogram, save_image

__all__ = [
    "FRCResult",
    "Rendered",
    "expected_frc_resolution",
    "frc",
    "render",
    "render_color",
    "render_gaussian",
    "render_histogram",
    "save_image",
]
