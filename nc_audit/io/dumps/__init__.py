"""Feature dumps (``nc-audit-features/1``): read, streamed in chunks, written atomically."""
