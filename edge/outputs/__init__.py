"""The kiosk's outputs: each subscribes to the loop's events and status (edge/events.py)."""
