"""`python -m nc_audit` runs the command-line interface."""

from nc_audit.cli import main

main()
