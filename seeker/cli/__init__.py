"""The `seeker` command: the user commands, their tables, the server
commands (start, up) and the demo."""
