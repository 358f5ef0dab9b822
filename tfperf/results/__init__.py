"""A run on disk: the row schema both sides share, and the reader and writer of a results folder."""
