"""Dashboard widgets: each shows one slice of a station snapshot."""
