"""The tools around the services: local infrastructure, the simulated region, the main job, the goal report.

They may use the platform (`flk`) and every service; nothing in `flk` or `services` imports them.
"""
