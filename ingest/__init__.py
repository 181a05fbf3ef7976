"""Ingest: MQTT subscription, vendor adapters, the batching pipeline and the device simulator."""
