"""The load: the Locust user, the batch dispenser, batch generation, insert paths, the collection."""
