"""The shared vocabulary of SafeCity Stream: settings, message schemas and topic names.

Nothing in this package imports another SafeCity package, and nothing here does I/O.
"""
