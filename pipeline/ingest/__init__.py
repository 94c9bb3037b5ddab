"""Getting files in: the watcher, intake (copy + hash + catalogue) and source disposal."""
