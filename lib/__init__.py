"""Victoria Island signal control: network, batched ARZ simulator, RL environments and training.

Map data © OpenStreetMap contributors, ODbL 1.0 (see lib/data/victoria_island/README.md).
"""
