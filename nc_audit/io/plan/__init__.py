"""What a command will read and write, checked before it reads or computes anything."""
