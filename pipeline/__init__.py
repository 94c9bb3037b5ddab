"""Evidence media pipeline: verified intake, catalog, custody log."""

__version__ = "0.1.0"
