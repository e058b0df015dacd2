"""The entity model: entities, links and typed fields, as data (实体模型)."""
