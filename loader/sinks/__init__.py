"""Where batches go. Every sink implements ``sinks.base.Sink``."""
