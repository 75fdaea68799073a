"""Cassette files: the transport that records and replays HTTP in vcrpy's format."""
