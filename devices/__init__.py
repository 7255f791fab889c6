"""Bedside-device side: the simulator and replayer that publish readings to Kafka.

* ``wire``         the message: ``DeviceReading`` (schema v1) as compact JSON, key = patient id
* ``mimic_replay`` a real ICU stay (MIMIC numerics) replayed as a monitor, artefacts and all
* ``scenarios``    named clinical scenarios as pure functions of time
* ``generator``    seeded simulated patients (drift, noise, charting) following the scenarios
* ``regions``      home counties (FIPS) drawn from a weighted catchment
* ``faults``       deliberately malformed traffic for the dead-letter path (off by default)
* ``admissions``   registering the patients in the census before publishing
* ``publisher``    the Kafka producer: batching, pacing by absolute time, progress, clean stop
* ``cli``          ``icu simulate replay|generate|scenarios``
"""
