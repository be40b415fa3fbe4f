"""Channel renderers: each turns published entries into bytes; none of them writes files."""
