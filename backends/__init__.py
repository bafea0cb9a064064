"""Built-in backend plugins, installed as `unified_ft.backends` (never a bare top-level module)."""
