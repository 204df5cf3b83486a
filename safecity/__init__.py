"""The `safecity` command: runs the stages, the local services and the demo."""
