"""Mutex and RwLock: API, bad input, and crash tests with killed holders."""
