"""A trivial script: what a warm run costs when the script itself does nothing."""
print("hello")
