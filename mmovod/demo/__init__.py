"""The built-in demo: its seeded dataset and the stand-in models it ships."""
