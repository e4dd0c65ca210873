"""Reading: from storage to one frame of every scalar point.

source (the seam to storage) -> discover (runs) -> framing (TFRecord records) ->
event_file (events -> points: the C scan, protobuf for the rest) -> runs (a run's
files merged, restarts resolved) -> frame (all runs in one DataFrame). csvlogger and
hparams read Lightning's other files.
"""
