"""Policy files: YAML with positions, schema, parameters, tables (政策文件)."""
