"""Event envelopes and schemas, the topic catalogue, the outbox, its relay and consumers."""
