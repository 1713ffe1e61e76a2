"""Decoding of raw inputs (files, bytes, arrays) into what experts consume, with clear errors."""
