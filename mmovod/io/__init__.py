"""Shared I/O: the error type, atomic writes, JSON files and .npy arrays."""
