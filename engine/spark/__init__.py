"""The claim stages on Apache Spark, the same plan and engine inside each partition (分布式)."""
