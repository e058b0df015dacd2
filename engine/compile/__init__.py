"""From policy text to a runnable plan: the function registry, the compiler, the build driver (编译)."""
