"""The helper: an agent on each host that runs the containers it is given."""
