"""The service container handlers read and the factory that builds and wires it."""
