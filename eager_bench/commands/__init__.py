"""CLI command modules. Each module here defines `register(app: typer.Typer) -> None`; cli.py calls every one,
so a new command is a new file here and nothing else changes."""
