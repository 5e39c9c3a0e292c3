"""Generated from protos/ by protos/generate.py; do not edit."""

from google.protobuf import descriptor_pool

# ortserve's own pool: tritonclient registers the same names in the default pool.
POOL = descriptor_pool.DescriptorPool()
