"""The event engine: the bus protocols, the embedded and Kafka buses, delivery of messages."""
