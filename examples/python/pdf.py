"""A PDF parsed once with pypdf: later runs load the pages' text from the cache.

    devstash run --dir docs::docs:ro examples/python/pdf.py docs/report.pdf

The PDF's folder must be granted; its size and modification time are part of the key, so that
an edited file is parsed again.
"""

import os
import sys

import devstash
from pypdf import PdfReader

devstash.activate()


def load_pages(path, size, mtime):
    """Every page's text. `size` and `mtime` only key the call: a changed file is a new call."""
    print(f"parsing {path}...")
    return [page.extract_text() for page in PdfReader(path).pages]


path = sys.argv[1] if len(sys.argv) > 1 else "report.pdf"
st = os.stat(path)
pages = load_pages(path, st.st_size, st.st_mtime_ns)  # @devstash
print(f"Number of pages: {len(pages)}")
for i, text in enumerate(pages, 1):
    print(f"page {i}: {text.strip()[:60]}")
