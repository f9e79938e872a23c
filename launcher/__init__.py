from launcher.stack import Stack, Worker, free_port

__all__ = ["Stack", "Worker", "free_port"]
