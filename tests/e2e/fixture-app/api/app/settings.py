"""What the real app checks at import (api/app/sqids_config.py, auth.py, settings.py): it refuses to boot."""
import os
import sys

REQUIRED = ["SQIDS_ALPHABET", "JWT_SECRET_KEY", "MAKAPIX_IP_HASH_SALT", "VAULT_PUBLIC_BASE_URL", "DB_API_WORKER_USER", "DB_API_WORKER_PASSWORD", "DB_DATABASE", "MQTT_USERNAME"]


def check_or_exit(role):
    missing = [v for v in REQUIRED if not os.environ.get(v)]
    if missing:
        print(f"{role}: RuntimeError: {', '.join(missing)} must be set", file=sys.stderr, flush=True)
        sys.exit(1)
    if len(os.environ["JWT_SECRET_KEY"]) < 32:
        print(f"{role}: RuntimeError: JWT_SECRET_KEY must be at least 32 characters", file=sys.stderr, flush=True)
        sys.exit(1)
