"""Declarations: scenarios and variants as frozen data, the public builders, the registry of SPECs. No TensorFlow."""
