"""One module per output format; each exposes ``write(frame, path, *, wide)``."""
