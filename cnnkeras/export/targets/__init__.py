"""Deployment targets: boards and NPU compilers that size an exported model for real hardware."""
