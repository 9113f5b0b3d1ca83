"""Reading what sidforge published: the point-in-time feature store and the PyTorch shard reader.

`serving.reader` needs torch and pyarrow only; `serving.feature_store` reads the lake with Polars.
"""
