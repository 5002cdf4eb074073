"""Channels: Ring (SPSC) and Queue (MPMC) between threads and real processes."""
