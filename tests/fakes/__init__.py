"""In-memory stand-ins for the persistence layer, for fast service-layer tests."""
