"""The package version, in a leaf module so the records that carry it need not import the package's surface."""

__version__ = "0.1.0"
