"""Running commands inside an environment, and recording what happened."""
