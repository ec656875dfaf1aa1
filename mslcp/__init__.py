"""mslcp: multi-scale local conditional probability models of images."""
__version__ = "0.1.0"
