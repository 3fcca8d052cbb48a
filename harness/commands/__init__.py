"""One module per CLI command: NAME, HELP, add_arguments(parser), main(args) -> exit status."""
