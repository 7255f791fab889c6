"""Bedside-device side: the simulator and replayer that publish readings to Kafka."""
