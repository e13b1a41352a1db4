"""The main job (`flk run`): the services as children, a simulated region, the goal summary."""
