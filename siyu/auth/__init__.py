"""Who may call the API: integration tokens (issue #7; user roles arrive with the console)."""
