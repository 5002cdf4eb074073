"""MemoryFileSystem: its API, companions, D-MemFS parity, state machine and threads."""
