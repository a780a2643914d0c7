{ "targets": [{ "target_name": "e5_fd", "sources": ["fd.c"] }] }
