"""What the seeker does: its operations (submit, register, report, settle),
the dispatcher, helper health and probes, helper credentials."""
