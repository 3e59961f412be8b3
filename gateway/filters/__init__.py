"""The filter chain: request hooks run first to last, response hooks last to first, the forwarder at the end."""
