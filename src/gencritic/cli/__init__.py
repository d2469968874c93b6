"""The command line: thin Typer commands that parse options and call the Python API."""
