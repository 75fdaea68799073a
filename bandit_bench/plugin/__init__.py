"""The pytest plugin: options, the case matrix, the controller-side collector."""
