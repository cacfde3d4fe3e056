"""The call centre's people side: the ACD's edges (the event log, the live announcements), agent
states as the desk and the wallboard show them, and their read models."""
