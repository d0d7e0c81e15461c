"""resize ops."""
