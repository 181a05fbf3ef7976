"""1-3-5 dispatch: which units go to an alert, their deadlines, arrival and escalation."""
