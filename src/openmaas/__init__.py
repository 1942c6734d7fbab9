"""OpenMaaS: share datasets, define benchmark tasks, train, serve and govern models."""

from openmaas.client import Client

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]
