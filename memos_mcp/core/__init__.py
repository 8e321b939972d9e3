"""The memory core: models, service and stores. It knows no transport."""
