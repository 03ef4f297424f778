"""One module per resource; each route loads inputs, calls the core, returns plain JSON."""
