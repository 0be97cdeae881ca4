"""The event documentation system: decorators, the registry, AsyncAPI 2.6.0, TypeScript types, the catalogue."""
