"""Channel bill parsers: one module per format, each producing canonical Arrow batches."""
