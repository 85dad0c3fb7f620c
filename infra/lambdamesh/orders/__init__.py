"""``lambdamesh orders``: the orders service's own operations (its read model's rebuild)."""
