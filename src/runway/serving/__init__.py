"""``runway serve``: the Production model over REST, behind a gateway that follows the registry."""
