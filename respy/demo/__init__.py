"""The demo: a local weather-backend (two versions behind a router) that needs no cluster."""
