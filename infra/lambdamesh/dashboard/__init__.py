"""``lambdamesh dashboard``: a local web page showing the system as it runs."""
