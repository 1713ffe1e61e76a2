"""Applications on top of the library: the ``bind`` command line, the demo and its web page."""
