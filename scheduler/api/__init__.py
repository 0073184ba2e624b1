"""The HTTP face: one router module per resource, typed dependencies, one error renderer."""
