"""The back-office routers: one per resource."""
