"""What every Seeker service needs: token checks, JSON errors, HTTP clients,
a real WSGI server and the database connection (embedded or external)."""
