"""The engine supervisor: what runs in the router. lifecycle.py (the Supervisor), types.py (specs, status, events),
launch.py, health.py, process.py (one child process group) and warden.py (stops engines if the router dies).

Nothing is re-exported here: `python -m engines.supervisor.warden` must not import the rest of the package."""
