"""mslcp: multi-scale local conditional probability models of images."""
__version__ = "0.1.0"  # the one place: pyproject.toml reads it; `.ci/release.py VERSION` changes it
# The book's repository: the one place that names it. _config.yml, the README and every chapter's first cell
# repeat it (tests/test_colab.py checks that they agree); it is a placeholder until the repository is published.
REPOSITORY = "https://github.com/mslcp/mslcp"
# What `pip install` takes (Colab): the tagged release the book was built with, so a saved chapter keeps its library.
REPOSITORY_PIP = f"git+{REPOSITORY}@v{__version__}"
