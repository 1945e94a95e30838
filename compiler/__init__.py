"""Model checkpoint -> graph -> memory plan -> generated forward pass + weight shards."""
