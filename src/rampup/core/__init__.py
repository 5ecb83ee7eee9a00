"""The domain core: pure functions and values. No I/O, no clock reads, no randomness."""
