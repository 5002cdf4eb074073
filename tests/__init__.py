"""memspace's pytest suite, one package per area (fs, channels, locks, views, shm, cli).

The folders are packages so that test modules are imported by their full dotted name
(`tests.fs.test_api`, `tests.locks.test_api`): two files may share a basename, and a spawned
child process can import a test module to find the function it runs.
"""
