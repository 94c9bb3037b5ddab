"""Accounts and proving who one is: users with roles and clearances, passwords, web sessions and API
tokens. Shared by the command line and the web application; each change is a custody event, and no
password or secret is ever recorded."""
