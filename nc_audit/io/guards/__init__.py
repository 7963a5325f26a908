"""Plain files of an untrusted input: opened safely, bounded, hashed, written atomically, proven."""
