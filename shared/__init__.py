"""Code common to the tidegate services: event schemas, config, Kafka and database helpers."""
