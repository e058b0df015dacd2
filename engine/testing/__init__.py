"""Policy test cases kept as data (政策测试用例)."""
