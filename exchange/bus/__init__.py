"""The Kafka side of the bus: clients, topic names, the record envelope."""
