"""The router: source records to every entitled consumer, as its own view."""
