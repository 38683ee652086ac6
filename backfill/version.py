"""The version --version prints and the package has: a leaf."""

__version__ = "1.0.0"
