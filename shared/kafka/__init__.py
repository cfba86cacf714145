"""The broker, by role: `calls` (timeouts, waiting for the broker), `records` (CloudEvents
headers, what is sent and where it came from), `producer`, `consumer` (the consumer loop:
the delivery contract) and `admin` (topics, offsets, partitions)."""
