"""Avro: schemas and their ids, wire framing, byte-level scanning, JSON form."""
