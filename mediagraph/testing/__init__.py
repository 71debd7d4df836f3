"""Tools for testing graphs: event-log checkers, hypothesis strategies, test nodes."""
