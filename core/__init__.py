"""What the gateway (service/) and the workers (worker/) share, torch-free and FastAPI-free:
every setting, the task contract between them, prepared frames as they travel, and the
Redis store."""
