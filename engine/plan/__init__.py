"""Planning: order variables by their dependencies across entities (求值计划)."""
