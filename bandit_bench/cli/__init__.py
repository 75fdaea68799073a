"""The ``bandit-bench`` command line."""
