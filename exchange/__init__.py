"""Inter-department data exchange bus (政务数据共享交换总线).

Departments publish Avro-typed records to Kafka; a permission manager applies
the shared list (共享清单) before any record reaches a subscriber.
"""

__version__ = "0.1.0"
