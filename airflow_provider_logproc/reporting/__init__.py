"""What the report step judges beyond the analyzer's own figures (no Airflow, no Azure imports)."""
