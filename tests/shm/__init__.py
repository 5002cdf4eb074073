"""SharedMemory segments and their headers."""
