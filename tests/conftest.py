"""Fixtures shared by several test files: pytest registers them from their support modules."""

pytest_plugins = ["tests.link_support", "tests.therapy_support", "tests.mqtt_support"]
