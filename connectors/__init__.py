"""Connectors: department databases and files in and out of the bus.

==================  =====================================================================
``base``            the lifecycle every connector follows (setup, start, poll, flush,
                    stop), its progress and Prometheus metrics
``config``          the YAML config file, checked with pydantic; errors name file and line
``db_source``       a PostgreSQL or MySQL/MariaDB table or query → records of a resource
``db_sink``         a department's delivered view → a table of its own database (upsert)
``files``           JSON Lines and CSV import (validated whole first) and export
``checkpoint``      where database sources keep their position (table or file)
``mapping``         which column types fit which Avro field types; value conversion
``sql``             the database interface; ``postgres`` and ``mysql`` implement it
``runner``          builds, checks and runs the connectors of a file (``exchange connect``)
``errors``          what goes wrong, naming column, field, file and line
==================  =====================================================================
"""
