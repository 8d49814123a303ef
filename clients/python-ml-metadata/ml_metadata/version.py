"""The ml-metadata release whose client API this package provides."""

__version__ = "1.17.1"
