"""The console's pages, one module per group; :mod:`.common` holds what they share."""
