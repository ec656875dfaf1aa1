"""mslcp: multi-scale local conditional probability models of images."""
__version__ = "0.1.0"
# The book's repository: the one place that names it. _config.yml, the README and every chapter's first cell
# repeat it (tests/test_colab.py checks that they agree); it is a placeholder until the repository is published.
REPOSITORY = "https://github.com/mslcp/mslcp"
REPOSITORY_PIP = f"git+{REPOSITORY}"  # what `pip install` takes (Colab)
