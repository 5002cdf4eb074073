"""`memspace` command line: `ls`, `rm`, `inspect`, `--version` and `memspace demo`."""
