"""The seeker's database: tasks and their assignments, helpers, events.
Every state change is one conditional update."""
