"""Administering the Kafka cluster from the catalog: ACLs."""
