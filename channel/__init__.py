"""The channel: stores structured results in MongoDB, answers queries by task id."""
