"""hap3d: 3D human pose and shape estimation (HAP / 3DCrowdNet), installable and reference-exact."""

__version__ = "0.2.0"
