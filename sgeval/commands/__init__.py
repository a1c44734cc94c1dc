"""Click commands of the `sgeval` CLI that are not owned by a library module (registered in `sgeval.cli.COMMANDS`)."""
