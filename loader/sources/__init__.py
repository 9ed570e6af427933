"""Where events come from. Each source yields events (or failed events) in arrival order."""
