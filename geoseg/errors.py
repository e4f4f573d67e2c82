"""Every way geoseg fails.

Each error is a :class:`GeosegError` and also the builtin it refines, so callers can catch either.
Messages are one line that names the offending value and, where there is one, the fix; the CLI
prints them as they are and exits with status 1.
"""

from __future__ import annotations


class GeosegError(Exception):
    """Root of every error geoseg raises on purpose."""


class InvalidSceneError(GeosegError, ValueError):
    """The input scene cannot be read or lacks what segmentation needs (CRS, transform, bands)."""


class EmptySceneError(InvalidSceneError):
    """The scene holds no valid pixel (it is all nodata)."""


class BandMappingError(GeosegError, ValueError):
    """The scene's bands cannot be matched to the bands the model needs."""


class ModelError(GeosegError, ValueError):
    """A model name is unknown or a model file is not a geoseg model."""


class OutputError(GeosegError, OSError):
    """An output path cannot be written (missing folder, not writable, exists without overwrite)."""


class ConfigError(GeosegError, ValueError):
    """A configuration file or option has an unknown key, a wrong type or an invalid value."""


class LabelError(GeosegError, ValueError):
    """Labels do not fit the image (no overlap, no labelled pixel, missing class column)."""


class DeviceError(GeosegError, RuntimeError):
    """The requested compute device is not available."""


class VectorizeError(GeosegError, ValueError):
    """A class raster cannot be vectorized as asked (wrong type, no CRS, mismatched classes)."""


class BatchError(GeosegError, ValueError):
    """A batch input or execution setting is unusable (empty archive, unreachable scheduler)."""
