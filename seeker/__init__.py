"""The seeker: helper registry, task scheduling and dispatch, result choice."""
