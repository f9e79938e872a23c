"""The workers' tasks, one module per kind of work (registered by worker.app's `include`,
under the names core.tasks gives them)."""
