{ "targets": [{ "target_name": "e5_posix", "sources": ["posix.c"] }] }
