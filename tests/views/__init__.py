"""View and Record: typed values and records in shared memory."""
