"""Staff accounts: roles, passwords, sessions, second factor, API tokens, throttling, access policy."""
